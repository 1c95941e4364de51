#include "hsm/pkcs11_seal.h"

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>

#include <cctype>
#include <cstdio>
#include <map>
#include <mutex>
#include <vector>

#include "base/encoding.h"
#include "base/log.h"
#include "crypto/random.h"
#include "hsm/blob.h"

namespace custos::hsm {
namespace {

constexpr size_t kGcmIvBytes = 12;
constexpr size_t kGcmTagBytes = 16;

std::string rv_text(CK_RV rv) {
  return ckr_name(rv);
}

// One loaded library per path, initialised once and finalised when its last seal closes: two
// seals in one process (tests, or a reopened seal) must not finalise each other's library.
struct Library {
  void* handle = nullptr;
  CK_FUNCTION_LIST_PTR f = nullptr;
  bool owns_init = false;
  int refs = 0;
};

std::mutex& libraries_mu() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, Library>& libraries() {
  static auto* m = new std::map<std::string, Library>();  // never destroyed: used at exit
  return *m;
}

Result<CK_FUNCTION_LIST_PTR> acquire_library(const std::string& path) {
  std::lock_guard lock(libraries_mu());
  Library& lib = libraries()[path];
  if (lib.refs > 0) {
    ++lib.refs;
    return lib.f;
  }
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* err = dlerror();
    libraries().erase(path);
    return unavailable("cannot load the PKCS#11 library " + path + ": " +
                       (err ? err : "dlopen failed"));
  }
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(dlsym(h, "C_GetFunctionList"));
  CK_FUNCTION_LIST_PTR f = nullptr;
  if (!get_list || get_list(&f) != CKR_OK || !f) {
    dlclose(h);
    libraries().erase(path);
    return unavailable(path + " is not a PKCS#11 library (no usable C_GetFunctionList)");
  }
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  CK_RV rv = f->C_Initialize(&args);
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    dlclose(h);
    libraries().erase(path);
    return unavailable("C_Initialize of " + path + " failed: " + rv_text(rv));
  }
  lib.handle = h;
  lib.f = f;
  lib.owns_init = rv == CKR_OK;
  lib.refs = 1;
  return f;
}

void release_library(const std::string& path) {
  std::lock_guard lock(libraries_mu());
  auto it = libraries().find(path);
  if (it == libraries().end() || --it->second.refs > 0) return;
  if (it->second.owns_init) it->second.f->C_Finalize(nullptr);
  dlclose(it->second.handle);
  libraries().erase(it);
}

std::string trim_label(const CK_UTF8CHAR* p, size_t n) {
  std::string s(reinterpret_cast<const char*>(p), n);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

// Return codes that mean the session (not the request) is gone: reopen and retry once.
bool session_lost(CK_RV rv) {
  return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED || rv == CKR_DEVICE_REMOVED ||
         rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_DEVICE_ERROR ||
         rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_KEY_HANDLE_INVALID;
}

Result<CK_MECHANISM_TYPE> oaep_hash(const std::string& name, CK_RSA_PKCS_MGF_TYPE& mgf) {
  if (name == "sha1") return (mgf = CKG_MGF1_SHA1, CKM_SHA_1);
  if (name == "sha224") return (mgf = CKG_MGF1_SHA224, CKM_SHA224);
  if (name == "sha256") return (mgf = CKG_MGF1_SHA256, CKM_SHA256);
  if (name == "sha384") return (mgf = CKG_MGF1_SHA384, CKM_SHA384);
  if (name == "sha512") return (mgf = CKG_MGF1_SHA512, CKM_SHA512);
  return invalid_argument("rsa_oaep_hash must be sha1, sha224, sha256, sha384 or sha512");
}

// OAEP blobs record their hash in the one-byte parameter field (docs/formats/barrier.md).
constexpr const char* kOaepHashes[] = {"sha1", "sha224", "sha256", "sha384", "sha512"};
constexpr size_t kOaepHashCount = sizeof(kOaepHashes) / sizeof(kOaepHashes[0]);

uint8_t oaep_hash_id(const std::string& name) {
  for (size_t i = 0; i < kOaepHashCount; ++i) {
    if (name == kOaepHashes[i]) return static_cast<uint8_t>(i);
  }
  return 2;  // unreachable: open() accepted only the names above
}

}  // namespace

struct Pkcs11Seal::Impl {
  Pkcs11SealOptions opt;
  CK_FUNCTION_LIST_PTR f = nullptr;
  CK_SLOT_ID slot = 0;
  std::string token;  // the token's label, for messages
  std::mutex mu;
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  std::map<std::pair<CK_OBJECT_CLASS, std::string>, CK_OBJECT_HANDLE> keys;

  ~Impl() {
    close_session();
    if (f) release_library(opt.lib);
  }

  void close_session() {
    if (session != CK_INVALID_HANDLE) f->C_CloseSession(session);
    session = CK_INVALID_HANDLE;
    keys.clear();
  }

  Status find_slot() {
    CK_ULONG n = 0;
    CK_RV rv = f->C_GetSlotList(CK_TRUE, nullptr, &n);
    if (rv != CKR_OK) return unavailable("C_GetSlotList failed: " + rv_text(rv));
    std::vector<CK_SLOT_ID> slots(n);
    rv = f->C_GetSlotList(CK_TRUE, slots.data(), &n);
    if (rv != CKR_OK) return unavailable("C_GetSlotList failed: " + rv_text(rv));
    slots.resize(n);
    std::string seen;
    for (CK_SLOT_ID s : slots) {
      CK_TOKEN_INFO info{};
      if (f->C_GetTokenInfo(s, &info) != CKR_OK) continue;
      std::string label = trim_label(info.label, sizeof(info.label));
      bool slot_ok = !opt.slot || *opt.slot == s;
      bool label_ok = opt.token_label.empty() || opt.token_label == label;
      if (slot_ok && label_ok) {
        slot = s;
        token = label;
        return ok_status();
      }
      seen += (seen.empty() ? "" : ", ") + std::to_string(s) + " (\"" + label + "\")";
    }
    std::string want = opt.slot ? "slot " + std::to_string(*opt.slot) : "";
    if (!opt.token_label.empty())
      want += (want.empty() ? "" : " with ") + ("token label \"" + opt.token_label + "\"");
    return unavailable("no PKCS#11 token matches " + want + " in " + opt.lib +
                       " (tokens present: " + (seen.empty() ? "none" : seen) + ")");
  }

  Status open_session() {
    if (session != CK_INVALID_HANDLE) return ok_status();
    CK_FLAGS flags = CKF_SERIAL_SESSION | (opt.generate_key ? CKF_RW_SESSION : 0);
    CK_RV rv = f->C_OpenSession(slot, flags, nullptr, nullptr, &session);
    if (rv != CKR_OK) {
      session = CK_INVALID_HANDLE;
      return unavailable("C_OpenSession on token \"" + token + "\" failed: " + rv_text(rv));
    }
    const std::string& pin = opt.pin.str();
    rv = f->C_Login(session, CKU_USER,
                    reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin.data())),
                    static_cast<CK_ULONG>(pin.size()));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
      close_session();
      return unavailable("login to token \"" + token + "\" failed: " + rv_text(rv));
    }
    return ok_status();
  }

  Result<std::vector<CK_OBJECT_HANDLE>> find(CK_OBJECT_CLASS cls, const std::string& label) {
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_LABEL, const_cast<char*>(label.data()), static_cast<CK_ULONG>(label.size())}};
    CK_RV rv = f->C_FindObjectsInit(session, tmpl, 2);
    if (rv != CKR_OK) return Status(Code::kUnavailable, "C_FindObjectsInit failed: " + rv_text(rv));
    std::vector<CK_OBJECT_HANDLE> out(4);
    CK_ULONG n = 0;
    rv = f->C_FindObjects(session, out.data(), static_cast<CK_ULONG>(out.size()), &n);
    f->C_FindObjectsFinal(session);
    if (rv != CKR_OK) return Status(Code::kUnavailable, "C_FindObjects failed: " + rv_text(rv));
    out.resize(n);
    return out;
  }

  Result<CK_OBJECT_HANDLE> generate_aes_key(const std::string& label) {
    CK_MECHANISM m{CKM_AES_KEY_GEN, nullptr, 0};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_ULONG len = 32;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_VALUE_LEN, &len, sizeof(len)},
        {CKA_LABEL, const_cast<char*>(label.data()), static_cast<CK_ULONG>(label.size())},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_DECRYPT, &yes, sizeof(yes)},
        {CKA_WRAP, &no, sizeof(no)},
        {CKA_UNWRAP, &no, sizeof(no)},
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv = f->C_GenerateKey(session, &m, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &h);
    if (rv != CKR_OK) {
      return Status(Code::kUnavailable, "generating key \"" + label + "\" on token \"" + token +
                                            "\" failed: " + rv_text(rv));
    }
    LOG_INFO("seal", "generated AES-256 key \"" << label << "\" on token \"" << token << "\"");
    return h;
  }

  // The key of `cls` labelled `label`: exactly one must exist, unless generation is allowed.
  Result<CK_OBJECT_HANDLE> key(CK_OBJECT_CLASS cls, const std::string& label, bool may_generate) {
    auto it = keys.find({cls, label});
    if (it != keys.end()) return it->second;
    ASSIGN_OR_RETURN(auto found, find(cls, label));
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    if (found.size() > 1) {
      return failed_precondition("more than one key labelled \"" + label + "\" on token \"" +
                                 token + "\"; labels must name one key");
    }
    if (found.empty()) {
      if (!may_generate) {
        return failed_precondition(
            "no key labelled \"" + label + "\" on token \"" + token + "\"" +
            (cls == CKO_SECRET_KEY ? " (set generate_key = true to create one)" : ""));
      }
      ASSIGN_OR_RETURN(h, generate_aes_key(label));
    } else {
      h = found.front();
    }
    keys[{cls, label}] = h;
    return h;
  }

  bool is_gcm(uint64_t mech) const { return mech == CKM_AES_GCM; }

  // One encrypt or decrypt call on the current session; the return code tells the caller
  // whether the session was lost.
  // `past_init`: the failure came from C_Encrypt/C_Decrypt itself, after the key and parameters
  // were accepted.
  CK_RV crypt(bool encrypt, uint64_t mech, CK_OBJECT_HANDLE k, ByteSpan iv, std::string_view aad,
              ByteSpan in, Bytes& out, bool& past_init) {
    past_init = false;
    CK_GCM_PARAMS gcm{};
    CK_RSA_PKCS_OAEP_PARAMS oaep{};
    CK_MECHANISM m{static_cast<CK_MECHANISM_TYPE>(mech), nullptr, 0};
    if (is_gcm(mech)) {
      gcm.pIv = const_cast<CK_BYTE_PTR>(iv.data());
      gcm.ulIvLen = iv.size();
      gcm.ulIvBits = iv.size() * 8;
      gcm.pAAD = reinterpret_cast<CK_BYTE_PTR>(const_cast<char*>(aad.data()));
      gcm.ulAADLen = aad.size();
      gcm.ulTagBits = kGcmTagBytes * 8;
      m.pParameter = &gcm;
      m.ulParameterLen = sizeof(gcm);
    } else {
      // The blob's parameter byte names the hash (checked by the caller).
      auto hash =
          oaep_hash(kOaepHashes[iv.empty() || iv[0] >= kOaepHashCount ? 2 : iv[0]], oaep.mgf);
      oaep.hashAlg = hash.ok() ? *hash : CKM_SHA256;
      oaep.source = CKZ_DATA_SPECIFIED;
      m.pParameter = &oaep;
      m.ulParameterLen = sizeof(oaep);
    }
    CK_RV rv = encrypt ? f->C_EncryptInit(session, &m, k) : f->C_DecryptInit(session, &m, k);
    if (rv != CKR_OK) return rv;
    past_init = true;
    CK_ULONG n = 0;
    auto* src = const_cast<CK_BYTE_PTR>(in.data());
    rv = encrypt ? f->C_Encrypt(session, src, in.size(), nullptr, &n)
                 : f->C_Decrypt(session, src, in.size(), nullptr, &n);
    if (rv == CKR_OK && (n == 0 || n > kMaxBlobCiphertext)) rv = CKR_DATA_LEN_RANGE;
    if (rv == CKR_OK) {
      out.assign(n, 0);
      rv = encrypt ? f->C_Encrypt(session, src, in.size(), out.data(), &n)
                   : f->C_Decrypt(session, src, in.size(), out.data(), &n);
    }
    if (rv == CKR_OK) {
      out.resize(n);
    } else {
      // An operation that failed (or that we abandoned after the size query) may still be
      // active on the session; a new session is the one portable way to end it.
      close_session();
    }
    return rv;
  }

  // Runs one operation with the session open, reopening it once if the HSM dropped it.
  template <typename Op>
  Result<Bytes> with_session(Op op) {
    for (int attempt = 0;; ++attempt) {
      RETURN_IF_ERROR(open_session());
      Bytes out;
      CK_RV rv = CKR_OK;
      ASSIGN_OR_RETURN(bool done, op(out, rv));
      if (done) return out;
      if (attempt == 0 && session_lost(rv)) {
        LOG_WARN("seal", "PKCS#11 session lost (" << rv_text(rv) << "); opening a new one");
        close_session();
        // A token that was removed and re-inserted may sit in another slot now.
        RETURN_IF_ERROR(find_slot());
        continue;
      }
      return Status(Code::kUnavailable, rv_text(rv));
    }
  }
};

Pkcs11Seal::Pkcs11Seal(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pkcs11Seal::~Pkcs11Seal() = default;

Result<std::unique_ptr<Pkcs11Seal>> Pkcs11Seal::open(Pkcs11SealOptions options) {
  if (options.lib.empty()) return invalid_argument("seal \"pkcs11\": lib is required");
  if (!options.slot && options.token_label.empty()) {
    return invalid_argument("seal \"pkcs11\": slot or token_label is required");
  }
  if (options.pin.empty()) return invalid_argument("seal \"pkcs11\": pin is required");
  if (options.key_label.empty()) return invalid_argument("seal \"pkcs11\": key_label is required");
  if (options.mechanism != CKM_AES_GCM && options.mechanism != CKM_RSA_PKCS_OAEP) {
    return invalid_argument(
        "seal \"pkcs11\": mechanism must be CKM_AES_GCM (0x1087) or "
        "CKM_RSA_PKCS_OAEP (0x9)");
  }
  CK_RSA_PKCS_MGF_TYPE mgf = 0;
  RETURN_IF_ERROR(oaep_hash(options.rsa_oaep_hash, mgf).status());
  if (options.generate_key && options.mechanism != CKM_AES_GCM) {
    return invalid_argument(
        "seal \"pkcs11\": generate_key creates AES keys only; create the RSA "
        "key pair on the HSM");
  }
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  ASSIGN_OR_RETURN(impl->f, acquire_library(impl->opt.lib));
  RETURN_IF_ERROR(impl->find_slot());
  RETURN_IF_ERROR(impl->open_session());
  // The keys must be there now (or be created now): a server that cannot seal should say so at
  // start, not at init.
  const std::string& label = impl->opt.key_label;
  if (impl->opt.mechanism == CKM_AES_GCM) {
    RETURN_IF_ERROR(impl->key(CKO_SECRET_KEY, label, impl->opt.generate_key).status());
  } else {
    RETURN_IF_ERROR(impl->key(CKO_PUBLIC_KEY, label, false).status());
    RETURN_IF_ERROR(impl->key(CKO_PRIVATE_KEY, label, false).status());
  }
  std::unique_ptr<Pkcs11Seal> seal(new Pkcs11Seal(std::move(impl)));
  // A round trip through the HSM proves the mechanism, its parameters and the key's permissions
  // now, not at the first init or unseal.
  SecretBytes probe = crypto::random_secret(32);
  auto blob = seal->encrypt(probe.span(), "custos/seal-probe");
  if (!blob.ok()) {
    std::string hint;
    if (seal->impl_->opt.mechanism == CKM_RSA_PKCS_OAEP &&
        blob.status().message().find("CKR_ARGUMENTS_BAD") != std::string::npos) {
      hint = " (does the HSM offer OAEP with " + seal->impl_->opt.rsa_oaep_hash +
             "? SoftHSM offers sha1 only: set rsa_oaep_hash)";
    }
    return Status(blob.status().code(), blob.status().message() + hint);
  }
  ASSIGN_OR_RETURN(SecretBytes back, seal->decrypt(*blob, "custos/seal-probe"));
  if (!(back == probe))
    return internal_error("the HSM's decryption did not return the probe value");
  return seal;
}

Result<Bytes> Pkcs11Seal::encrypt(ByteSpan plaintext, std::string_view aad) {
  Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  SealBlob blob;
  blob.mechanism = s.opt.mechanism;
  blob.key_label = s.opt.key_label;
  if (s.is_gcm(blob.mechanism)) {
    blob.iv = crypto::random_bytes(kGcmIvBytes);
  } else {
    blob.iv = {
        oaep_hash_id(s.opt.rsa_oaep_hash)};  // so a later rsa_oaep_hash change still reads it
  }
  auto out = s.with_session([&](Bytes& ct, CK_RV& rv) -> Result<bool> {
    bool gcm = s.is_gcm(blob.mechanism);
    ASSIGN_OR_RETURN(CK_OBJECT_HANDLE k, s.key(gcm ? CKO_SECRET_KEY : CKO_PUBLIC_KEY,
                                               blob.key_label, s.opt.generate_key));
    bool past_init = false;
    rv = s.crypt(true, blob.mechanism, k, blob.iv, aad, plaintext, ct, past_init);
    return rv == CKR_OK;
  });
  if (!out.ok()) {
    return Status(out.status().code(), "the HSM could not encrypt with key \"" + blob.key_label +
                                           "\": " + out.status().message());
  }
  blob.ciphertext = std::move(*out);
  return encode_blob(blob);
}

Result<SecretBytes> Pkcs11Seal::decrypt(ByteSpan stored, std::string_view aad) {
  ASSIGN_OR_RETURN(SealBlob blob, parse_blob(stored));
  if (blob.mechanism != CKM_AES_GCM && blob.mechanism != CKM_RSA_PKCS_OAEP) {
    return data_loss("seal blob: unknown mechanism " + std::to_string(blob.mechanism));
  }
  if (blob.mechanism == CKM_AES_GCM && blob.iv.size() != kGcmIvBytes) {
    return data_loss("seal blob: bad GCM IV length");
  }
  if (blob.mechanism == CKM_RSA_PKCS_OAEP &&
      (blob.iv.size() != 1 || blob.iv[0] >= kOaepHashCount)) {
    return data_loss("seal blob: bad OAEP hash");
  }
  Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  auto out = s.with_session([&](Bytes& pt, CK_RV& rv) -> Result<bool> {
    bool gcm = s.is_gcm(blob.mechanism);
    ASSIGN_OR_RETURN(CK_OBJECT_HANDLE k,
                     s.key(gcm ? CKO_SECRET_KEY : CKO_PRIVATE_KEY, blob.key_label, false));
    bool past_init = false;
    rv = s.crypt(false, blob.mechanism, k, blob.iv, aad, blob.ciphertext, pt, past_init);
    // A failed tag or padding check: the standard code, or (SoftHSM) a general failure of
    // C_Decrypt once the key and parameters were accepted.
    if (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
        (past_init && (rv == CKR_GENERAL_ERROR || rv == CKR_FUNCTION_FAILED))) {
      secure_wipe(pt.data(), pt.size());
      return data_loss("the HSM refused the stored value (" + rv_text(rv) +
                       "): it was not encrypted by key \"" + blob.key_label +
                       "\" for this purpose, or it was altered");
    }
    return rv == CKR_OK;
  });
  if (!out.ok()) {
    if (out.status().code() == Code::kDataLoss) return out.status();
    return Status(out.status().code(), "the HSM could not decrypt with key \"" + blob.key_label +
                                           "\": " + out.status().message());
  }
  return SecretBytes(std::move(*out));
}

std::string ckr_name(unsigned long rv) {
  static const std::map<unsigned long, const char*> kNames = {
      {CKR_OK, "CKR_OK"},
      {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
      {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
      {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
      {CKR_DATA_INVALID, "CKR_DATA_INVALID"},
      {CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE"},
      {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
      {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"},
      {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"},
      {CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID"},
      {CKR_ENCRYPTED_DATA_LEN_RANGE, "CKR_ENCRYPTED_DATA_LEN_RANGE"},
      {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"},
      {CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT"},
      {CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
      {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"},
      {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"},
      {CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID"},
      {CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
      {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
      {CKR_PIN_LOCKED, "CKR_PIN_LOCKED"},
      {CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED"},
      {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
      {CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY"},
      {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
      {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
      {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"},
      {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
      {CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED"},
      {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
      {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
  };
  auto it = kNames.find(rv);
  if (it != kNames.end()) return it->second;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "CKR_0x%lX", rv);
  return buf;
}

Result<uint64_t> parse_mechanism(std::string_view s) {
  if (s == "CKM_AES_GCM") return uint64_t{CKM_AES_GCM};
  if (s == "CKM_RSA_PKCS_OAEP") return uint64_t{CKM_RSA_PKCS_OAEP};
  auto v = parse_uint64(s);
  if (!v) {
    return invalid_argument(
        "mechanism must be a number such as \"0x1087\" or a name such as "
        "\"CKM_AES_GCM\"");
  }
  return *v;
}

}  // namespace custos::hsm
