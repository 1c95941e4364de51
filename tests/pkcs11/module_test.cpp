// The module's C ABI where no key broker is needed: calls before C_Initialize, the checks on
// CK_C_INITIALIZE_ARGS, and a bad configuration (reported without repeating the PIN). Releases,
// sessions and signing through the ABI are tests/integration/pkcs11_nginx.sh.
#include "pkcs11/module.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace custos::pkcs11 {
namespace {

CK_RV create_mutex(void**) {
  return CKR_OK;
}
CK_RV other_mutex(void*) {
  return CKR_OK;
}

std::string write_config(const std::string& name, const std::string& text) {
  std::string path =
      (std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()) + ".hcl"))
          .string();
  std::ofstream(path) << text;
  return path;
}

TEST(Pkcs11Module, EveryCallBeforeInitializeSaysSo) {
  CK_FUNCTION_LIST* f = function_list();
  ASSERT_EQ(f->version.major, 2);
  CK_ULONG n = 0;
  EXPECT_EQ(f->C_GetSlotList(CK_FALSE, nullptr, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
  CK_SESSION_HANDLE h = 0;
  EXPECT_EQ(f->C_OpenSession(1, CKF_SERIAL_SESSION, nullptr, nullptr, &h),
            CKR_CRYPTOKI_NOT_INITIALIZED);
  CK_ULONG size = 0;
  EXPECT_EQ(f->C_GetObjectSize(1, 1, &size), CKR_CRYPTOKI_NOT_INITIALIZED);
  EXPECT_EQ(f->C_GetFunctionStatus(1), CKR_CRYPTOKI_NOT_INITIALIZED);
  CK_BYTE data[4] = {};
  CK_ULONG sig_len = 0;
  EXPECT_EQ(f->C_Sign(1, data, sizeof(data), nullptr, &sig_len), CKR_CRYPTOKI_NOT_INITIALIZED);
  EXPECT_EQ(f->C_SignUpdate(1, data, ~CK_ULONG{0}), CKR_CRYPTOKI_NOT_INITIALIZED);
  EXPECT_EQ(f->C_Finalize(nullptr), CKR_CRYPTOKI_NOT_INITIALIZED);
  EXPECT_EQ(f->C_Encrypt(1, data, 4, nullptr, &sig_len), CKR_FUNCTION_NOT_SUPPORTED);
}

TEST(Pkcs11Module, InitializeArgumentsAreChecked) {
  CK_FUNCTION_LIST* f = function_list();
  CK_C_INITIALIZE_ARGS args{};
  int reserved = 0;
  args.pReserved = &reserved;
  EXPECT_EQ(f->C_Initialize(&args), CKR_ARGUMENTS_BAD);
  args = CK_C_INITIALIZE_ARGS{};
  args.CreateMutex = &create_mutex;  // one callback of four
  EXPECT_EQ(f->C_Initialize(&args), CKR_ARGUMENTS_BAD);
  args.DestroyMutex = &other_mutex;
  args.LockMutex = &other_mutex;
  args.UnlockMutex = &other_mutex;
  EXPECT_EQ(f->C_Initialize(&args), CKR_CANT_LOCK) << "the module can only use OS locking";
  args = CK_C_INITIALIZE_ARGS{};
  args.flags = CKF_LIBRARY_CANT_CREATE_OS_THREADS;
  EXPECT_EQ(f->C_Initialize(&args), CKR_NEED_TO_CREATE_THREADS);
}

TEST(Pkcs11Module, ABadConfigurationFailsInitializeWithoutRepeatingThePin) {
  CK_FUNCTION_LIST* f = function_list();
  const std::string path = write_config(
      "custos-p11-bad", "kbs_addr = \"http://127.0.0.1:1\"\ntee = \"sim\"\npin = Hunter2secret\n");
  ::setenv(kConfigEnv, path.c_str(), 1);
  testing::internal::CaptureStderr();
  EXPECT_EQ(f->C_Initialize(nullptr), CKR_GENERAL_ERROR);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("line 3: syntax error"), std::string::npos) << err;
  EXPECT_EQ(err.find("Hunter2secret"), std::string::npos) << err;

  ::setenv(kConfigEnv, (path + ".missing").c_str(), 1);
  testing::internal::CaptureStderr();
  EXPECT_EQ(f->C_Initialize(nullptr), CKR_GENERAL_ERROR);
  err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("cannot read the configuration"), std::string::npos) << err;

  // A valid file whose release fails (no sim platform here): the device error, with the key.
  const std::string no_sim = write_config(
      "custos-p11-nosim", "kbs_addr = \"http://127.0.0.1:1\"\ntee = \"sim\"\nsim_dir = \"" + path +
                              ".nowhere\"\nkey \"web\" { id = \"k1\" }\n");
  ::setenv(kConfigEnv, no_sim.c_str(), 1);
  testing::internal::CaptureStderr();
  EXPECT_EQ(f->C_Initialize(nullptr), CKR_DEVICE_ERROR);
  err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("custos-pkcs11: the key broker released nothing"), std::string::npos) << err;
  // Nothing was initialised: a later call still says so.
  CK_ULONG n = 0;
  EXPECT_EQ(f->C_GetSlotList(CK_FALSE, nullptr, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
  std::filesystem::remove(path);
  std::filesystem::remove(no_sim);
  ::unsetenv(kConfigEnv);
}

}  // namespace
}  // namespace custos::pkcs11
