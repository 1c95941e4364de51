#include "cli/quorum.h"

#include <boost/json.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "base/bytes.h"
#include "base/encoding.h"
#include "cli/client.h"
#include "cli/output.h"

namespace custos::cli {
namespace {

namespace json = boost::json;

struct QuorumFlags {
  bool init = false, status = false, cancel = false, verify = false;
  std::string nonce, decode, otp, target = "barrier", key;
  int shares = 5, threshold = 3;
};

std::string str(const json::object& o, const char* k) {
  const auto* v = o.if_contains(k);
  return v && v->is_string() ? std::string(v->as_string()) : "";
}

// The nonce of the attempt in progress, read from `status_path` when not given (as the vault
// CLI does).
Result<std::string> current_nonce(Client& c, const std::string& given, const std::string& path) {
  if (!given.empty()) return given;
  ASSIGN_OR_RETURN(ApiReply r, c.call("GET", path));
  std::string nonce = r.body.is_object() ? str(r.body.as_object(), "nonce") : "";
  if (nonce.empty()) return failed_precondition("no operation in progress at " + path);
  return nonce;
}

std::string key_or_prompt(const std::string& key, const char* prompt) {
  return key.empty() ? read_stdin_line(prompt) : key;
}

int run_generate_root(Client& c, const Globals& g, QuorumFlags& f) {
  const std::string path = "sys/generate-root/attempt";
  Result<ApiReply> r = invalid_argument("");
  if (!f.decode.empty()) {
    if (f.otp.empty()) return fail(invalid_argument("-decode needs the -otp the attempt printed"));
    auto token = decode_root_token(f.decode, f.otp);
    if (!token.ok()) return fail(token.status());
    SecretString wipe(*token);
    std::printf("%s\n", token->c_str());
    return 0;
  }
  if (f.cancel) {
    r = c.call("DELETE", path);
    if (!r.ok()) return fail(r.status());
    std::printf("Success! Root token generation canceled (if it was started)\n");
    return 0;
  }
  if (f.init) {
    // With -otp, the caller's password (28 base62 characters); without, the server's.
    json::value body = json::object{{"otp", f.otp}};
    r = c.call("PUT", path, f.otp.empty() ? nullptr : &body);
  } else if (f.status) {
    r = c.call("GET", path);
  } else {
    auto nonce = current_nonce(c, f.nonce, path);
    if (!nonce.ok()) return fail(nonce.status());
    SecretString key(key_or_prompt(f.key, "Unseal Key (will be hidden): "));
    json::value body = json::object{{"key", key.str()}, {"nonce", *nonce}};
    r = c.call("PUT", "sys/generate-root/update", &body);
  }
  if (!r.ok()) return fail(r.status());
  if (g.format == "json") {
    std::printf("%s\n", json::serialize(r->body).c_str());
    return 0;
  }
  const json::object& o = r->body.as_object();
  json::object t{
      {"Nonce", o.at("nonce")},
      {"Started", o.at("started")},
      {"Progress", json::serialize(o.at("progress")) + "/" + json::serialize(o.at("required"))},
      {"Complete", o.at("complete")}};
  if (!str(o, "otp").empty()) t["OTP"] = o.at("otp");
  t["OTP Length"] = o.at("otp_length");
  if (!str(o, "encoded_token").empty()) t["Encoded Token"] = o.at("encoded_token");
  print_table(t);
  return 0;
}

int run_rekey(Client& c, const Globals& g, QuorumFlags& f) {
  if (f.target != "barrier" && f.target != "recovery") {
    return fail(invalid_argument("-target must be barrier or recovery"));
  }
  const std::string base = f.target == "recovery" ? "sys/rekey-recovery-key/" : "sys/rekey/";
  Result<ApiReply> r = invalid_argument("");
  if (f.cancel) {
    r = c.call("DELETE", base + (f.verify ? "verify" : "init"));
    if (!r.ok()) return fail(r.status());
    std::printf(f.verify ? "Success! Canceled rekey verification; it restarts with a new nonce\n"
                         : "Success! Canceled rekeying (if it was started)\n");
    return 0;
  }
  if (f.init) {
    json::value body = json::object{{"secret_shares", f.shares},
                                    {"secret_threshold", f.threshold},
                                    {"require_verification", f.verify}};
    r = c.call("PUT", base + "init", &body);
  } else if (f.status) {
    r = c.call("GET", base + (f.verify ? "verify" : "init"));
  } else {
    std::string step = f.verify ? "verify" : "update";
    auto nonce = current_nonce(c, f.nonce, base + (f.verify ? "verify" : "init"));
    if (!nonce.ok()) return fail(nonce.status());
    SecretString key(key_or_prompt(
        f.key, f.verify ? "New Key (will be hidden): " : "Unseal Key (will be hidden): "));
    json::value body = json::object{{"key", key.str()}, {"nonce", *nonce}};
    r = c.call("PUT", base + step, &body);
  }
  if (!r.ok()) return fail(r.status());
  if (g.format == "json") {
    std::printf("%s\n", json::serialize(r->body).c_str());
    return 0;
  }
  const json::object& o = r->body.as_object();
  const auto* complete = o.if_contains("complete");
  if (complete && complete->is_bool() && complete->as_bool()) {
    if (const auto* keys = o.if_contains("keys_base64")) {
      int i = 1;
      for (const auto& k : keys->as_array()) {
        std::printf("Key %d: %s\n", i++, std::string(k.as_string()).c_str());
      }
      std::printf("\nOperation nonce: %s\n\n", str(o, "nonce").c_str());
      if (!str(o, "verification_nonce").empty()) {
        std::printf(
            "The new shares are not yet in force. Give a threshold of them with:\n"
            "  custos operator rekey -verify%s -nonce=%s KEY\n"
            "Verification Nonce: %s\n",
            f.target == "recovery" ? " -target=recovery" : "", str(o, "verification_nonce").c_str(),
            str(o, "verification_nonce").c_str());
      } else {
        std::printf("Vault rekeyed with %zu key shares and a key threshold of %s.\n",
                    keys->as_array().size(), json::serialize(o.at("t")).c_str());
      }
    } else {
      std::printf("Success! Rekey verification complete; the new shares are in force.\n");
    }
    return 0;
  }
  json::object t;
  for (const auto& [k, v] : o) t[k] = v;
  print_table(t);
  return 0;
}

}  // namespace

Result<std::string> decode_root_token(std::string_view encoded, std::string_view otp) {
  ASSIGN_OR_RETURN(Bytes raw, base64_decode(strip_whitespace(encoded)));
  if (raw.size() != otp.size()) {
    return invalid_argument("the encoded token is " + std::to_string(raw.size()) +
                            " bytes, the one-time password " + std::to_string(otp.size()) +
                            ": not the password of this attempt");
  }
  std::string token(raw.size(), '\0');
  for (size_t i = 0; i < raw.size(); ++i) token[i] = static_cast<char>(raw[i] ^ otp[i]);
  secure_wipe(raw.data(), raw.size());
  return token;
}

void register_quorum_commands(CLI::App& op, Globals& g) {
  auto run = [&g](std::shared_ptr<QuorumFlags> f,
                  int (*fn)(Client&, const Globals&, QuorumFlags&)) {
    return [&g, f, fn] {
      try {
        Client c;
        g.exit_code = fn(c, g, *f);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        g.exit_code = 2;
      }
    };
  };

  auto gf = std::make_shared<QuorumFlags>();
  auto* gr = op.add_subcommand(
      "generate-root",
      "Generate a new root token with a quorum of unseal (or recovery) key shares; no token "
      "needed. -init prints a one-time password; each holder then runs it with a key; the last "
      "gets the encoded token, which -decode turns back into the token with that password");
  gr->add_option("key", gf->key, "Unseal (or recovery) key share; prompted for when omitted");
  gr->add_flag("--init", gf->init, "Start an attempt (prints the one-time password once)");
  gr->add_flag("--status", gf->status, "Show the attempt's progress");
  gr->add_flag("--cancel", gf->cancel, "Cancel the attempt and forget its shares");
  gr->add_option("--nonce", gf->nonce, "The attempt's nonce (read from the status when omitted)");
  gr->add_option("--decode", gf->decode, "Decode this encoded token (needs --otp)");
  gr->add_option("--otp", gf->otp,
                 "With --decode: the attempt's one-time password; with --init: use this one "
                 "(28 base62 characters) instead of the server's");
  gr->callback(run(gf, run_generate_root));

  auto rf = std::make_shared<QuorumFlags>();
  auto* rk = op.add_subcommand(
      "rekey",
      "Replace the unseal key (or, -target=recovery, the recovery key) and its shares, "
      "authorised by a quorum of the current shares; no token needed. Start with -init "
      "-key-shares -key-threshold [-verify], then each holder runs it with a key");
  rk->add_option("key", rf->key, "A current key share (with -verify: a new one); prompted for");
  rk->add_flag("--init", rf->init, "Start rekeying");
  rk->add_option("--key-shares", rf->shares, "With --init: number of new shares")->default_val(5);
  rk->add_option("--key-threshold", rf->threshold, "With --init: shares needed")->default_val(3);
  rk->add_flag("--verify", rf->verify,
               "With --init: the new shares take effect only once a threshold of them is given "
               "back; otherwise: give (or, with --status/--cancel, inspect/restart) that proof");
  rk->add_option("--target", rf->target, "barrier (the unseal key) or recovery")
      ->default_val("barrier");
  rk->add_flag("--status", rf->status, "Show the progress");
  rk->add_flag("--cancel", rf->cancel, "Cancel rekeying (with --verify: restart the verification)");
  rk->add_option("--nonce", rf->nonce, "The operation's nonce (read from the status when omitted)");
  rk->callback(run(rf, run_rekey));
}

}  // namespace custos::cli
