#include "pkcs11/module.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "agent/fetch.h"
#include "pkcs11/config.h"
#include "pkcs11/token.h"

namespace custos::pkcs11 {
namespace {

constexpr CK_SLOT_ID kSlot = 1;
constexpr size_t kMaxSignInput = 1 << 20;
constexpr size_t kMaxConfigBytes = 64 * 1024;

void report(const std::string& what) {
  std::fprintf(stderr, "custos-pkcs11: %s\n", what.c_str());
}

struct Session {
  CK_FLAGS flags = 0;
  bool finding = false;
  std::vector<CK_OBJECT_HANDLE> found;
  size_t next_found = 0;
  bool signing = false;
  bool multipart = false;  // C_SignUpdate was called
  SignMechanism mechanism;
  CK_OBJECT_HANDLE key = 0;
  Bytes buffer;  // C_SignUpdate's input so far
};

struct State {
  std::mutex mu;
  bool initialized = false;
  bool initializing = false;  // a C_Initialize is attesting (outside the lock)
  pid_t pid = 0;
  std::string token_label;
  SecretString pin;
  // Immutable once made; signing runs on a copy of the pointer, outside the lock.
  std::shared_ptr<const Token> token;
  std::map<CK_SESSION_HANDLE, Session> sessions;
  CK_SESSION_HANDLE next_session = 1;
  bool logged_in = false;
};

State& state() {
  static State* s = new State;  // never destroyed: C_Finalize may run during exit
  return *s;
}

void pad(CK_UTF8CHAR* dst, size_t n, std::string_view s) {
  std::memset(dst, ' ', n);
  std::memcpy(dst, s.data(), std::min(n, s.size()));
}

Result<ModuleConfig> load_config() {
  const char* env = ::secure_getenv(kConfigEnv);
  const std::string path = env != nullptr && *env != '\0' ? env : kDefaultConfigPath;
  std::ifstream in(path, std::ios::binary);
  if (!in) return failed_precondition("cannot read the configuration " + path);
  std::string text(kMaxConfigBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  Result<ModuleConfig> c = text.size() > kMaxConfigBytes
                               ? Result<ModuleConfig>(invalid_argument("larger than 64 KiB"))
                               : parse_module_config(text);
  secure_wipe(text.data(), text.size());  // it may hold the PIN
  if (!c.ok()) return invalid_argument(path + ": " + c.status().message());
  return c;
}

// Attests to the broker once per key (each release has its own nonce and ephemeral key).
Result<std::vector<TokenKey>> release_keys(const ModuleConfig& cfg) {
  agent::ProducerConfig pc = cfg.producer;
  pc.program = agent::self_executable();
  ASSIGN_OR_RETURN(std::unique_ptr<agent::EvidenceProducer> producer, agent::make_producer(pc));
  agent::FetchOptions fo;
  fo.kbs_addr = cfg.kbs_addr;
  fo.ca_file = cfg.ca_file;
  fo.insecure_skip_verify = cfg.tls_skip_verify;
  fo.producer = producer.get();
  std::vector<TokenKey> keys;
  for (const KeySpec& spec : cfg.keys) {
    fo.key_id = spec.id;
    Result<SecretBytes> material = agent::fetch_key(fo);
    if (!material.ok()) {
      return Status(material.status().code(),
                    "key \"" + spec.label + "\": " + material.status().message());
    }
    Result<crypto::PrivateKey> key = crypto::PrivateKey::from_der(material->span());
    if (!key.ok() || key->type() == crypto::KeyType::kEd25519) {
      return invalid_argument("key \"" + spec.label +
                              "\": the broker released no RSA or EC private key (PKCS#8)");
    }
    keys.push_back(TokenKey{spec.label, spec.id, std::move(*key)});
  }
  return keys;
}

// Runs `f` under the module's lock once the module is initialised and `slot` is ours.
template <typename F>
CK_RV on_slot(CK_SLOT_ID slot, F&& f) {
  State& s = state();
  std::lock_guard lock(s.mu);
  if (!s.initialized) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (slot != kSlot) return CKR_SLOT_ID_INVALID;
  return f(s);
}

// The same once `session` is open.
template <typename F>
CK_RV on_session(CK_SESSION_HANDLE session, F&& f) {
  State& s = state();
  std::lock_guard lock(s.mu);
  if (!s.initialized) return CKR_CRYPTOKI_NOT_INITIALIZED;
  auto it = s.sessions.find(session);
  if (it == s.sessions.end()) return CKR_SESSION_HANDLE_INVALID;
  return f(s, it->second);
}

// ---- general purpose ----

CK_RV Initialize(CK_VOID_PTR init_args) {
  if (init_args != nullptr) {
    CK_C_INITIALIZE_ARGS args;
    std::memcpy(&args, init_args, sizeof(args));
    if (args.pReserved != nullptr) return CKR_ARGUMENTS_BAD;
    const int given = (args.CreateMutex != nullptr) + (args.DestroyMutex != nullptr) +
                      (args.LockMutex != nullptr) + (args.UnlockMutex != nullptr);
    if (given != 0 && given != 4) return CKR_ARGUMENTS_BAD;
    // The module locks with the OS's primitives only, and the release runs an HTTP client
    // whose name resolution starts threads.
    if (given == 4 && (args.flags & CKF_OS_LOCKING_OK) == 0) return CKR_CANT_LOCK;
    if ((args.flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS) != 0) return CKR_NEED_TO_CREATE_THREADS;
  }
  State& s = state();
  {
    std::lock_guard lock(s.mu);
    if (s.initialized) {
      if (s.pid == ::getpid()) return CKR_CRYPTOKI_ALREADY_INITIALIZED;
      // A child after fork(): the keys it inherited stay; sessions and login do not.
      s.sessions.clear();
      s.logged_in = false;
      s.pid = ::getpid();
      return CKR_OK;
    }
    if (s.initializing) return CKR_CRYPTOKI_ALREADY_INITIALIZED;
    s.initializing = true;
  }
  // Attestation and release take network round trips: not under the lock, which every other
  // call (and a fork() meanwhile) would otherwise wait for.
  Result<ModuleConfig> cfg = load_config();
  Result<std::vector<TokenKey>> keys =
      cfg.ok() ? release_keys(*cfg) : Result<std::vector<TokenKey>>(cfg.status());
  std::lock_guard lock(s.mu);
  s.initializing = false;
  if (!cfg.ok()) {
    report(cfg.status().message());
    return CKR_GENERAL_ERROR;
  }
  if (!keys.ok()) {
    report("the key broker released nothing: " + keys.status().message());
    return CKR_DEVICE_ERROR;
  }
  const bool has_pin = !cfg->pin.empty();
  s.token = std::make_shared<const Token>(std::move(*keys), has_pin);
  s.token_label = cfg->token_label;
  s.pin = std::move(cfg->pin);
  s.sessions.clear();
  s.logged_in = false;
  s.pid = ::getpid();
  s.initialized = true;
  return CKR_OK;
}

CK_RV Finalize(CK_VOID_PTR reserved) {
  if (reserved != nullptr) return CKR_ARGUMENTS_BAD;
  State& s = state();
  std::lock_guard lock(s.mu);
  if (!s.initialized) return CKR_CRYPTOKI_NOT_INITIALIZED;
  s.token.reset();
  s.pin = SecretString();
  s.sessions.clear();
  s.logged_in = false;
  s.initialized = false;
  return CKR_OK;
}

CK_RV GetInfo(CK_INFO_PTR info) {
  if (info == nullptr) return CKR_ARGUMENTS_BAD;
  State& s = state();
  std::lock_guard lock(s.mu);
  if (!s.initialized) return CKR_CRYPTOKI_NOT_INITIALIZED;
  std::memset(info, 0, sizeof(*info));
  info->cryptokiVersion = {2, 40};
  pad(info->manufacturerID, sizeof(info->manufacturerID), "Custos");
  pad(info->libraryDescription, sizeof(info->libraryDescription), "Custos key broker token");
  info->libraryVersion = {1, 0};
  return CKR_OK;
}

// ---- slots and tokens ----

CK_RV GetSlotList(CK_BBOOL, CK_SLOT_ID_PTR list, CK_ULONG_PTR count) {
  if (count == nullptr) return CKR_ARGUMENTS_BAD;
  State& s = state();
  std::lock_guard lock(s.mu);
  if (!s.initialized) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (list == nullptr) {
    *count = 1;
    return CKR_OK;
  }
  if (*count < 1) {
    *count = 1;
    return CKR_BUFFER_TOO_SMALL;
  }
  list[0] = kSlot;
  *count = 1;
  return CKR_OK;
}

CK_RV GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info) {
  if (info == nullptr) return CKR_ARGUMENTS_BAD;
  return on_slot(slot, [&](State&) -> CK_RV {
    std::memset(info, 0, sizeof(*info));
    pad(info->slotDescription, sizeof(info->slotDescription), "Custos key broker");
    pad(info->manufacturerID, sizeof(info->manufacturerID), "Custos");
    info->flags = CKF_TOKEN_PRESENT;
    info->hardwareVersion = {1, 0};
    info->firmwareVersion = {1, 0};
    return CKR_OK;
  });
}

CK_RV GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
  if (info == nullptr) return CKR_ARGUMENTS_BAD;
  return on_slot(slot, [&](State& s) -> CK_RV {
    std::memset(info, 0, sizeof(*info));
    pad(info->label, sizeof(info->label), s.token_label);
    pad(info->manufacturerID, sizeof(info->manufacturerID), "Custos");
    pad(info->model, sizeof(info->model), "key broker");
    pad(info->serialNumber, sizeof(info->serialNumber), "1");
    info->flags = CKF_TOKEN_INITIALIZED | CKF_WRITE_PROTECTED | CKF_USER_PIN_INITIALIZED |
                  (s.pin.empty() ? 0 : CKF_LOGIN_REQUIRED);
    info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
    info->ulSessionCount = s.sessions.size();
    info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
    info->ulRwSessionCount = static_cast<CK_ULONG>(
        std::count_if(s.sessions.begin(), s.sessions.end(),
                      [](const auto& e) { return (e.second.flags & CKF_RW_SESSION) != 0; }));
    info->ulMaxPinLen = 256;
    info->ulMinPinLen = s.pin.empty() ? 0 : 1;
    info->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
    info->hardwareVersion = {1, 0};
    info->firmwareVersion = {1, 0};
    pad(info->utcTime, sizeof(info->utcTime), "");
    return CKR_OK;
  });
}

CK_RV GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count) {
  if (count == nullptr) return CKR_ARGUMENTS_BAD;
  return on_slot(slot, [&](State&) -> CK_RV {
    const std::vector<CK_MECHANISM_TYPE> mechs = sign_mechanisms();
    if (list == nullptr) {
      *count = mechs.size();
      return CKR_OK;
    }
    if (*count < mechs.size()) {
      *count = mechs.size();
      return CKR_BUFFER_TOO_SMALL;
    }
    std::copy(mechs.begin(), mechs.end(), list);
    *count = mechs.size();
    return CKR_OK;
  });
}

CK_RV GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info) {
  if (info == nullptr) return CKR_ARGUMENTS_BAD;
  return on_slot(slot, [&](State&) -> CK_RV {
    if (is_rsa_mechanism(type)) {
      *info = CK_MECHANISM_INFO{2048, 8192, CKF_SIGN};
    } else if (is_ec_mechanism(type)) {
      *info = CK_MECHANISM_INFO{256, 521,
                                CKF_SIGN | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS};
    } else {
      return CKR_MECHANISM_INVALID;
    }
    return CKR_OK;
  });
}

// ---- sessions ----

CK_RV OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR, CK_NOTIFY,
                  CK_SESSION_HANDLE_PTR session) {
  if (session == nullptr) return CKR_ARGUMENTS_BAD;
  return on_slot(slot, [&](State& s) -> CK_RV {
    if ((flags & CKF_SERIAL_SESSION) == 0) return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
    const CK_SESSION_HANDLE h = s.next_session++;
    s.sessions[h].flags = flags;
    *session = h;
    return CKR_OK;
  });
}

CK_RV CloseSession(CK_SESSION_HANDLE session) {
  return on_session(session, [&](State& s, Session&) -> CK_RV {
    s.sessions.erase(session);
    if (s.sessions.empty()) s.logged_in = false;  // the login ends with the last session
    return CKR_OK;
  });
}

CK_RV CloseAllSessions(CK_SLOT_ID slot) {
  return on_slot(slot, [&](State& s) -> CK_RV {
    s.sessions.clear();
    s.logged_in = false;
    return CKR_OK;
  });
}

CK_RV GetSessionInfo(CK_SESSION_HANDLE session, CK_SESSION_INFO_PTR info) {
  if (info == nullptr) return CKR_ARGUMENTS_BAD;
  return on_session(session, [&](State& s, Session& se) -> CK_RV {
    const bool rw = (se.flags & CKF_RW_SESSION) != 0;
    info->slotID = kSlot;
    info->flags = se.flags;
    info->ulDeviceError = 0;
    if (s.logged_in) {
      info->state = rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS;
    } else {
      info->state = rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION;
    }
    return CKR_OK;
  });
}

CK_RV Login(CK_SESSION_HANDLE session, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len) {
  return on_session(session, [&](State& s, Session&) -> CK_RV {
    // No security officer; no key needs CKU_CONTEXT_SPECIFIC (CKA_ALWAYS_AUTHENTICATE is false).
    if (user == CKU_CONTEXT_SPECIFIC) return CKR_OPERATION_NOT_INITIALIZED;
    if (user != CKU_USER) return CKR_USER_TYPE_INVALID;
    if (s.logged_in) return CKR_USER_ALREADY_LOGGED_IN;
    if (!s.pin.empty()) {
      if (pin == nullptr && pin_len > 0) return CKR_ARGUMENTS_BAD;
      std::string_view given(reinterpret_cast<const char*>(pin), pin == nullptr ? 0 : pin_len);
      if (!constant_time_equal(given, s.pin.str())) return CKR_PIN_INCORRECT;
    }
    s.logged_in = true;
    return CKR_OK;
  });
}

CK_RV Logout(CK_SESSION_HANDLE session) {
  return on_session(session, [&](State& s, Session&) -> CK_RV {
    if (!s.logged_in) return CKR_USER_NOT_LOGGED_IN;
    s.logged_in = false;
    return CKR_OK;
  });
}

// ---- objects ----

CK_RV GetAttributeValue(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_PTR tmpl,
                        CK_ULONG count) {
  if (tmpl == nullptr && count > 0) return CKR_ARGUMENTS_BAD;
  return on_session(session, [&](State& s, Session&) -> CK_RV {
    if (!s.token->visible(object, s.logged_in)) return CKR_OBJECT_HANDLE_INVALID;
    CK_RV rv = CKR_OK;
    for (CK_ULONG i = 0; i < count; ++i) {
      Bytes value;
      switch (s.token->attribute(object, tmpl[i].type, value)) {
        case Token::Lookup::kSensitive:
          tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
          rv = CKR_ATTRIBUTE_SENSITIVE;
          continue;
        case Token::Lookup::kUnknownType:
          tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
          if (rv == CKR_OK) rv = CKR_ATTRIBUTE_TYPE_INVALID;
          continue;
        case Token::Lookup::kFound:
          break;
      }
      if (tmpl[i].pValue == nullptr) {
        tmpl[i].ulValueLen = value.size();
      } else if (tmpl[i].ulValueLen < value.size()) {
        tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
        if (rv == CKR_OK) rv = CKR_BUFFER_TOO_SMALL;
      } else {
        if (!value.empty()) std::memcpy(tmpl[i].pValue, value.data(), value.size());
        tmpl[i].ulValueLen = value.size();
      }
    }
    return rv;
  });
}

CK_RV FindObjectsInit(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count) {
  if (tmpl == nullptr && count > 0) return CKR_ARGUMENTS_BAD;
  return on_session(session, [&](State& s, Session& se) -> CK_RV {
    if (se.finding) return CKR_OPERATION_ACTIVE;
    se.found.clear();
    se.next_found = 0;
    for (CK_OBJECT_HANDLE h = 1; h <= s.token->object_count(); ++h) {
      if (s.token->visible(h, s.logged_in) && s.token->matches(h, tmpl, count))
        se.found.push_back(h);
    }
    se.finding = true;
    return CKR_OK;
  });
}

CK_RV FindObjects(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE_PTR out, CK_ULONG max,
                  CK_ULONG_PTR count) {
  if ((out == nullptr && max > 0) || count == nullptr) return CKR_ARGUMENTS_BAD;
  return on_session(session, [&](State&, Session& se) -> CK_RV {
    if (!se.finding) return CKR_OPERATION_NOT_INITIALIZED;
    CK_ULONG n = 0;
    while (n < max && se.next_found < se.found.size()) out[n++] = se.found[se.next_found++];
    *count = n;
    return CKR_OK;
  });
}

CK_RV FindObjectsFinal(CK_SESSION_HANDLE session) {
  return on_session(session, [&](State&, Session& se) -> CK_RV {
    if (!se.finding) return CKR_OPERATION_NOT_INITIALIZED;
    se.finding = false;
    se.found.clear();
    return CKR_OK;
  });
}

CK_RV GetObjectSize(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object, CK_ULONG_PTR size) {
  if (size == nullptr) return CKR_ARGUMENTS_BAD;
  return on_session(session, [&](State& s, Session&) -> CK_RV {
    if (!s.token->visible(object, s.logged_in)) return CKR_OBJECT_HANDLE_INVALID;
    *size = CK_UNAVAILABLE_INFORMATION;
    return CKR_OK;
  });
}

// ---- signing ----

CK_RV SignInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key) {
  if (mechanism == nullptr) return CKR_ARGUMENTS_BAD;
  return on_session(session, [&](State& s, Session& se) -> CK_RV {
    if (se.signing) return CKR_OPERATION_ACTIVE;
    if (!s.token->visible(key, s.logged_in)) return CKR_KEY_HANDLE_INVALID;
    if (!s.token->is_private_key(key)) return CKR_KEY_FUNCTION_NOT_PERMITTED;
    if (!s.pin.empty() && !s.logged_in) return CKR_USER_NOT_LOGGED_IN;
    SignMechanism m;
    CK_RV rv = check_sign_mechanism(*mechanism, s.token->key(key).key, m);
    if (rv != CKR_OK) return rv;
    se.signing = true;
    se.multipart = false;
    se.mechanism = m;
    se.key = key;
    se.buffer.clear();
    return CKR_OK;
  });
}

// C_Sign (`final` false: `data` is the whole input) and C_SignFinal (the C_SignUpdate input).
// Every outcome ends the operation except a length query and CKR_BUFFER_TOO_SMALL (PKCS#11
// §5.2).
CK_RV finish_sign(CK_SESSION_HANDLE session, const CK_BYTE* data, CK_ULONG data_len, bool final,
                  CK_BYTE_PTR signature, CK_ULONG_PTR signature_len) {
  State& s = state();
  std::shared_ptr<const Token> token;
  SignMechanism m;
  CK_OBJECT_HANDLE key = 0;
  Bytes input;
  {
    std::lock_guard lock(s.mu);
    if (!s.initialized) return CKR_CRYPTOKI_NOT_INITIALIZED;
    auto it = s.sessions.find(session);
    if (it == s.sessions.end()) return CKR_SESSION_HANDLE_INVALID;
    Session& se = it->second;
    if (!se.signing) return CKR_OPERATION_NOT_INITIALIZED;
    auto end = [&se](CK_RV rv) {
      se.signing = false;
      se.multipart = false;
      se.buffer.clear();
      return rv;
    };
    if (signature_len == nullptr || (!final && data == nullptr && data_len > 0)) {
      return end(CKR_ARGUMENTS_BAD);
    }
    if (!final && se.multipart) return end(CKR_OPERATION_ACTIVE);  // C_Sign after C_SignUpdate
    if (!final && data_len > kMaxSignInput) return end(CKR_DATA_LEN_RANGE);
    if (!s.token->visible(se.key, s.logged_in)) return end(CKR_USER_NOT_LOGGED_IN);
    const size_t need = signature_length(s.token->key(se.key).key);
    if (signature == nullptr || *signature_len < need) {
      *signature_len = need;
      return signature == nullptr ? CKR_OK : CKR_BUFFER_TOO_SMALL;
    }
    token = s.token;
    m = se.mechanism;
    key = se.key;
    input = final ? std::move(se.buffer) : Bytes(data, data + data_len);
    end(CKR_OK);
  }
  Bytes sig;
  CK_RV rv = sign(m, token->key(key).key, input, sig);
  if (rv != CKR_OK) return rv;
  std::memcpy(signature, sig.data(), sig.size());
  *signature_len = sig.size();
  return CKR_OK;
}

CK_RV Sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR signature,
           CK_ULONG_PTR signature_len) {
  return finish_sign(session, data, data_len, false, signature, signature_len);
}

CK_RV SignUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len) {
  return on_session(session, [&](State&, Session& se) -> CK_RV {
    if (!se.signing) return CKR_OPERATION_NOT_INITIALIZED;
    CK_RV rv = CKR_OK;
    if (part == nullptr && part_len > 0) {
      rv = CKR_ARGUMENTS_BAD;
    } else if (part_len > kMaxSignInput - se.buffer.size()) {  // the buffer never passes the cap
      rv = CKR_DATA_LEN_RANGE;
    }
    if (rv != CKR_OK) {
      se.signing = false;
      se.multipart = false;
      se.buffer.clear();
      return rv;
    }
    se.multipart = true;
    if (part_len > 0) se.buffer.insert(se.buffer.end(), part, part + part_len);
    return CKR_OK;
  });
}

CK_RV SignFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR signature, CK_ULONG_PTR signature_len) {
  return finish_sign(session, nullptr, 0, true, signature, signature_len);
}

CK_RV not_parallel(CK_SESSION_HANDLE session) {
  return on_session(session, [&](State&, Session&) -> CK_RV { return CKR_FUNCTION_NOT_PARALLEL; });
}
CK_RV GetFunctionStatus(CK_SESSION_HANDLE session) {
  return not_parallel(session);
}
CK_RV CancelFunction(CK_SESSION_HANDLE session) {
  return not_parallel(session);
}

// No exception leaves through the C ABI: the host (nginx) would abort.
template <auto F>
struct Guarded;
template <typename... Args, CK_RV (*F)(Args...)>
struct Guarded<F> {
  static CK_RV fn(Args... args) noexcept {
    try {
      return F(args...);
    } catch (const std::bad_alloc&) {
      return CKR_HOST_MEMORY;
    } catch (...) {
      return CKR_GENERAL_ERROR;
    }
  }
};

// Everything else: a read-only signing token.
template <typename F>
struct Unsupported;
template <typename... Args>
struct Unsupported<CK_RV (*)(Args...)> {
  static CK_RV fn(Args...) { return CKR_FUNCTION_NOT_SUPPORTED; }
};
#define CUSTOS_UNSUPPORTED(field) list.field = &Unsupported<decltype(list.field)>::fn

CK_RV GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out);

CK_FUNCTION_LIST make_list() {
  CK_FUNCTION_LIST list{};
  list.version = {2, 40};
  list.C_Initialize = &Guarded<&Initialize>::fn;
  list.C_Finalize = &Guarded<&Finalize>::fn;
  list.C_GetInfo = &Guarded<&GetInfo>::fn;
  list.C_GetFunctionList = &Guarded<&GetFunctionList>::fn;
  list.C_GetSlotList = &Guarded<&GetSlotList>::fn;
  list.C_GetSlotInfo = &Guarded<&GetSlotInfo>::fn;
  list.C_GetTokenInfo = &Guarded<&GetTokenInfo>::fn;
  list.C_GetMechanismList = &Guarded<&GetMechanismList>::fn;
  list.C_GetMechanismInfo = &Guarded<&GetMechanismInfo>::fn;
  CUSTOS_UNSUPPORTED(C_InitToken);
  CUSTOS_UNSUPPORTED(C_InitPIN);
  CUSTOS_UNSUPPORTED(C_SetPIN);
  list.C_OpenSession = &Guarded<&OpenSession>::fn;
  list.C_CloseSession = &Guarded<&CloseSession>::fn;
  list.C_CloseAllSessions = &Guarded<&CloseAllSessions>::fn;
  list.C_GetSessionInfo = &Guarded<&GetSessionInfo>::fn;
  CUSTOS_UNSUPPORTED(C_GetOperationState);
  CUSTOS_UNSUPPORTED(C_SetOperationState);
  list.C_Login = &Guarded<&Login>::fn;
  list.C_Logout = &Guarded<&Logout>::fn;
  CUSTOS_UNSUPPORTED(C_CreateObject);
  CUSTOS_UNSUPPORTED(C_CopyObject);
  CUSTOS_UNSUPPORTED(C_DestroyObject);
  list.C_GetObjectSize = &Guarded<&GetObjectSize>::fn;
  list.C_GetAttributeValue = &Guarded<&GetAttributeValue>::fn;
  CUSTOS_UNSUPPORTED(C_SetAttributeValue);
  list.C_FindObjectsInit = &Guarded<&FindObjectsInit>::fn;
  list.C_FindObjects = &Guarded<&FindObjects>::fn;
  list.C_FindObjectsFinal = &Guarded<&FindObjectsFinal>::fn;
  CUSTOS_UNSUPPORTED(C_EncryptInit);
  CUSTOS_UNSUPPORTED(C_Encrypt);
  CUSTOS_UNSUPPORTED(C_EncryptUpdate);
  CUSTOS_UNSUPPORTED(C_EncryptFinal);
  CUSTOS_UNSUPPORTED(C_DecryptInit);
  CUSTOS_UNSUPPORTED(C_Decrypt);
  CUSTOS_UNSUPPORTED(C_DecryptUpdate);
  CUSTOS_UNSUPPORTED(C_DecryptFinal);
  CUSTOS_UNSUPPORTED(C_DigestInit);
  CUSTOS_UNSUPPORTED(C_Digest);
  CUSTOS_UNSUPPORTED(C_DigestUpdate);
  CUSTOS_UNSUPPORTED(C_DigestKey);
  CUSTOS_UNSUPPORTED(C_DigestFinal);
  list.C_SignInit = &Guarded<&SignInit>::fn;
  list.C_Sign = &Guarded<&Sign>::fn;
  list.C_SignUpdate = &Guarded<&SignUpdate>::fn;
  list.C_SignFinal = &Guarded<&SignFinal>::fn;
  CUSTOS_UNSUPPORTED(C_SignRecoverInit);
  CUSTOS_UNSUPPORTED(C_SignRecover);
  CUSTOS_UNSUPPORTED(C_VerifyInit);
  CUSTOS_UNSUPPORTED(C_Verify);
  CUSTOS_UNSUPPORTED(C_VerifyUpdate);
  CUSTOS_UNSUPPORTED(C_VerifyFinal);
  CUSTOS_UNSUPPORTED(C_VerifyRecoverInit);
  CUSTOS_UNSUPPORTED(C_VerifyRecover);
  CUSTOS_UNSUPPORTED(C_DigestEncryptUpdate);
  CUSTOS_UNSUPPORTED(C_DecryptDigestUpdate);
  CUSTOS_UNSUPPORTED(C_SignEncryptUpdate);
  CUSTOS_UNSUPPORTED(C_DecryptVerifyUpdate);
  CUSTOS_UNSUPPORTED(C_GenerateKey);
  CUSTOS_UNSUPPORTED(C_GenerateKeyPair);
  CUSTOS_UNSUPPORTED(C_WrapKey);
  CUSTOS_UNSUPPORTED(C_UnwrapKey);
  CUSTOS_UNSUPPORTED(C_DeriveKey);
  CUSTOS_UNSUPPORTED(C_SeedRandom);
  CUSTOS_UNSUPPORTED(C_GenerateRandom);
  list.C_GetFunctionStatus = &Guarded<&GetFunctionStatus>::fn;
  list.C_CancelFunction = &Guarded<&CancelFunction>::fn;
  CUSTOS_UNSUPPORTED(C_WaitForSlotEvent);
  return list;
}
#undef CUSTOS_UNSUPPORTED

CK_RV GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out) {
  if (out == nullptr) return CKR_ARGUMENTS_BAD;
  *out = function_list();
  return CKR_OK;
}

}  // namespace

CK_FUNCTION_LIST* function_list() {
  static CK_FUNCTION_LIST list = make_list();
  return &list;
}

}  // namespace custos::pkcs11
