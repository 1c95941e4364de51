// libcustos-pkcs11.so: the PKCS#11 module's one exported symbol (src/pkcs11/module.h).
#include "pkcs11/module.h"

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(
    CK_FUNCTION_LIST_PTR_PTR list) {
  if (list == nullptr) return CKR_ARGUMENTS_BAD;
  *list = custos::pkcs11::function_list();
  return CKR_OK;
}
