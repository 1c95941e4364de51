// The PKCS#11 module (docs/pkcs11.md): one slot whose token holds the keys the key broker releases
// to this process. C_Initialize reads the configuration (CUSTOS_PKCS11_CONFIG, default
// /etc/custos/pkcs11.hcl), measures the host program (/proc/self/exe), attests to the broker and
// receives every configured key wrapped to an ephemeral key of its own; the keys then sign inside
// this process and never leave it (CKA_EXTRACTABLE false, CKA_SENSITIVE true). A refused release
// fails C_Initialize with CKR_DEVICE_ERROR and the broker's reason on stderr.
//
// The shared library libcustos-pkcs11.so (src/pkcs11_module.cpp) exports C_GetFunctionList only.
#pragma once

#include <p11-kit/pkcs11.h>

namespace custos::pkcs11 {

CK_FUNCTION_LIST* function_list();

inline constexpr const char* kConfigEnv = "CUSTOS_PKCS11_CONFIG";
inline constexpr const char* kDefaultConfigPath = "/etc/custos/pkcs11.hcl";

}  // namespace custos::pkcs11
