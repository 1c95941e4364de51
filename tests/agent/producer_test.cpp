// Evidence producers against the sim platform and against fake configfs-tsm / Gramine trees:
// the producer must write exactly the report data it was given, read back the evidence the
// "kernel" left there, clean up after itself, and refuse what does not look right.
#include "agent/producer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "agent/internal.h"
#include "attestation/dcap/quote.h"
#include "attestation/sim/sim.h"
#include "base/encoding.h"
#include "crypto/x509.h"
#include "storage/temp_dir.h"

namespace custos::agent {
namespace {

namespace fs = std::filesystem;
using attestation::TeeType;
using storage::testing::TempDir;

Bytes read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing file " << p;
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write_all(const fs::path& p, ByteSpan b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
void write_all(const fs::path& p, std::string_view s) {
  write_all(p, as_bytes(s));
}

Bytes vector_file(const std::string& rel) {
  return read_all(std::string(CUSTOS_SOURCE_DIR "/../shared/vectors/") + rel);
}

Bytes report_data(uint8_t seed) {
  Bytes b(kReportDataSize);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(seed + i);
  return b;
}

// ---- sim ----

TEST(SimProducer, ProducesEvidenceTheSimVerifierAccepts) {
  TempDir d;
  SysTime now = std::chrono::system_clock::now();
  auto platform = attestation::sim::SimPlatform::create(d.file("sim"), now);
  ASSERT_TRUE(platform.ok()) << platform.status().to_string();
  write_all(d.file("app"), "the workload binary");

  ProducerConfig c;
  c.tee = TeeType::kSim;
  c.sim_dir = d.file("sim");
  c.program = d.file("app");
  c.isv_prod_id = 9;
  auto p = make_producer(c);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ((*p)->tee(), TeeType::kSim);
  Bytes rd = report_data(1);
  auto e = (*p)->produce(rd);
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  EXPECT_EQ(e->evidence.tee, TeeType::kSim);
  EXPECT_TRUE(e->collateral.count("tcb_info"));

  attestation::sim::SimVerifier v(platform->root());
  attestation::VerifyOptions o;
  o.at = now;
  auto r = v.verify(e->evidence, e->collateral, o);
  ASSERT_TRUE(r.ok()) << r.rejection().reason << ": " << r.rejection().message;
  EXPECT_EQ(r.claims().tee, TeeType::kSim);
  EXPECT_EQ(r.claims().report_data, rd);
  EXPECT_EQ(std::string(r.claims().fields.at("mrenclave").as_string()),
            hex_encode(crypto::sha256(as_bytes("the workload binary"))));
  EXPECT_EQ(r.claims().fields.at("isv_prod_id").to_number<int64_t>(), 9);

  // Report data must be exactly 64 bytes.
  EXPECT_EQ((*p)->produce(Bytes(32)).status().code(), Code::kInvalidArgument);
  EXPECT_EQ((*p)->produce(Bytes(65)).status().code(), Code::kInvalidArgument);
}

TEST(SimProducer, ConfigErrors) {
  TempDir d;
  ProducerConfig c;
  c.tee = TeeType::kSim;
  EXPECT_EQ(make_producer(c).status().code(), Code::kInvalidArgument);  // no dir
  c.sim_dir = d.file("missing");
  c.program = d.file("missing-program");
  EXPECT_FALSE(make_producer(c).ok());
  ASSERT_TRUE(
      attestation::sim::SimPlatform::create(d.file("sim"), std::chrono::system_clock::now()).ok());
  c.sim_dir = d.file("sim");
  EXPECT_EQ(make_producer(c).status().code(), Code::kNotFound);  // program missing
}

// ---- configfs-tsm (TDX, SNP) ----

// A configfs-tsm report tree in a temp dir with one pre-made entry, standing in for the kernel:
// it "answers" with a real captured quote/report placed in outblob.
struct FakeTsm {
  TempDir dir;
  fs::path root() const { return fs::path(dir.path()) / "report"; }
  fs::path entry() const { return root() / "e0"; }
  FakeTsm(const std::string& provider, const Bytes& outblob) {
    fs::create_directories(entry());
    write_all(entry() / "provider", provider + "\n");
    write_all(entry() / "generation", "7\n");
    write_all(entry() / "outblob", outblob);
  }
};

TEST(TsmProducer, TdxWritesInblobAndReturnsOutblob) {
  Bytes quote = vector_file("tdx-dcapqvl-v4-sample/tdx_quote");
  ASSERT_FALSE(quote.empty());
  FakeTsm tsm("tdx_guest", quote);
  ProducerConfig c;
  c.tee = TeeType::kTdx;
  c.tsm_root = tsm.root();
  c.tsm_entry = "e0";
  auto p = make_producer(c);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ((*p)->tee(), TeeType::kTdx);
  Bytes rd = report_data(0x40);
  auto e = (*p)->produce(rd);
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  EXPECT_EQ(e->evidence.tee, TeeType::kTdx);
  EXPECT_EQ(e->evidence.data, quote);
  EXPECT_TRUE(e->collateral.empty());
  EXPECT_EQ(read_all(tsm.entry() / "inblob"), rd);
  // The outblob is a quote the DCAP parser reads as TDX.
  auto parsed = attestation::dcap::parse_quote(e->evidence.data);
  ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
  EXPECT_TRUE(parsed->is_tdx());
  // A pre-existing entry is left in place.
  EXPECT_TRUE(fs::exists(tsm.entry()));

  // A second report overwrites inblob (one write, truncated).
  Bytes rd2 = report_data(0x80);
  ASSERT_TRUE((*p)->produce(rd2).ok());
  EXPECT_EQ(read_all(tsm.entry() / "inblob"), rd2);
}

TEST(TsmProducer, ProviderMismatchAndMissingOutblobAndMissingRoot) {
  Bytes quote = vector_file("tdx-dcapqvl-v4-sample/tdx_quote");
  FakeTsm tsm("sev_guest", quote);
  ProducerConfig c;
  c.tee = TeeType::kTdx;
  c.tsm_root = tsm.root();
  c.tsm_entry = "e0";
  auto p = make_producer(c);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->produce(report_data(0)).status().code(), Code::kFailedPrecondition);

  // A fresh entry (no tsm_entry): mkdir works, but no kernel fills outblob.
  c.tsm_entry.clear();
  auto fresh = make_producer(c);
  ASSERT_TRUE(fresh.ok());
  auto r = (*fresh)->produce(report_data(0));
  EXPECT_FALSE(r.ok());
  // The fresh entry was created below the root.
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(tsm.root())) {
    if (e.path().filename().string().rfind("custos-", 0) == 0) ++entries;
  }
  EXPECT_EQ(entries, 1u);

  c.tsm_root = tsm.dir.file("no-such-dir");
  EXPECT_EQ(make_producer(c).status().code(), Code::kUnavailable);
  c.tsm_root = tsm.root();
  c.tsm_entry = "../escape";
  EXPECT_EQ(make_producer(c).status().code(), Code::kInvalidArgument);
}

// The SNP certificate table: GUID (first three fields little-endian), offset, length; zero end.
Bytes cert_table(const std::vector<std::pair<std::string, Bytes>>& entries) {
  auto guid = [](const std::string& text) {
    std::string hex;
    for (char ch : text) {
      if (ch != '-') hex.push_back(ch);
    }
    Bytes b = hex_decode(hex).value();
    std::reverse(b.begin(), b.begin() + 4);
    std::reverse(b.begin() + 4, b.begin() + 6);
    std::reverse(b.begin() + 6, b.begin() + 8);
    return b;
  };
  auto put32 = [](Bytes& b, size_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>((v >> (8 * i)) & 0xff));
  };
  size_t offset = (entries.size() + 1) * 24;
  Bytes table, data;
  for (const auto& [g, der] : entries) {
    Bytes gb = guid(g);
    table.insert(table.end(), gb.begin(), gb.end());
    put32(table, offset + data.size());
    put32(table, der.size());
    data.insert(data.end(), der.begin(), der.end());
  }
  table.insert(table.end(), 24, 0);
  table.insert(table.end(), data.begin(), data.end());
  return table;
}

TEST(TsmProducer, SnpReturnsReportAndCertificatesFromAuxblob) {
  Bytes report = vector_file("snp-trustee-milan-vcek/test-report.bin");
  Bytes vcek = vector_file("snp-trustee-milan-vcek/test-vcek.der");
  Bytes chain_pem = vector_file("snp-trustee-milan-vcek/milan_ask_ark_asvk.pem");
  auto chain = crypto::Certificate::chain_from_pem(as_string_view(chain_pem));
  ASSERT_TRUE(chain.ok() && chain->size() >= 2);
  const crypto::Certificate& ask = (*chain)[0];
  const crypto::Certificate& ark = (*chain)[chain->size() - 1];

  FakeTsm tsm("sev_guest", report);
  write_all(tsm.entry() / "auxblob",
            cert_table({{"c0b406a4-a803-4952-9743-3fb6014cd0ae", ark.der()},
                        {"63da758d-e664-4564-adc5-f4b93be8accd", vcek},
                        {"00000000-1111-2222-3333-444444444444", Bytes{1, 2, 3}},
                        {"4ab7b379-bbac-4fe4-a02f-05aef327c782", ask.der()}}));
  ProducerConfig c;
  c.tee = TeeType::kSnp;
  c.tsm_root = tsm.root();
  c.tsm_entry = "e0";
  auto p = make_producer(c);
  ASSERT_TRUE(p.ok());
  Bytes rd = report_data(3);
  auto e = (*p)->produce(rd);
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  EXPECT_EQ(e->evidence.tee, TeeType::kSnp);
  EXPECT_EQ(e->evidence.data, report);
  EXPECT_EQ(read_all(tsm.entry() / "inblob"), rd);
  ASSERT_TRUE(e->collateral.count("vcek"));
  EXPECT_EQ(crypto::Certificate::from_any(e->collateral.at("vcek"))->der(), vcek);
  auto got_chain = crypto::Certificate::chain_from_pem(as_string_view(e->collateral.at("ask_ark")));
  ASSERT_TRUE(got_chain.ok());
  ASSERT_EQ(got_chain->size(), 2u);
  EXPECT_EQ((*got_chain)[0].der(), ask.der());  // ASK first, then ARK
  EXPECT_EQ((*got_chain)[1].der(), ark.der());
}

TEST(TsmProducer, MalformedAuxblobIsAnError) {
  // An entry whose offset points past the end.
  Bytes aux = cert_table({{"63da758d-e664-4564-adc5-f4b93be8accd", Bytes(10, 0x30)}});
  aux[16] = 0xff;
  EXPECT_FALSE(internal::snp_certs_from_auxblob(aux).ok());
  // Truncated table (no terminator).
  EXPECT_FALSE(internal::snp_certs_from_auxblob(Bytes(30, 0x01)).ok());
  // Empty table.
  auto empty = internal::snp_certs_from_auxblob(Bytes(24, 0));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

// ---- Gramine /dev/attestation (SGX) ----

TEST(GramineProducer, WritesUserReportDataAndReadsQuote) {
  TempDir d;
  fs::path root = fs::path(d.path()) / "attestation";
  fs::create_directories(root);
  Bytes quote = vector_file("sgx-dcapqvl-v3-sample/sgx_quote");
  ASSERT_FALSE(quote.empty());
  write_all(root / "attestation_type", "dcap");
  write_all(root / "quote", quote);
  ProducerConfig c;
  c.tee = TeeType::kSgx;
  c.attestation_root = root;
  auto p = make_producer(c);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ((*p)->tee(), TeeType::kSgx);
  Bytes rd = report_data(0x10);
  auto e = (*p)->produce(rd);
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  EXPECT_EQ(e->evidence.tee, TeeType::kSgx);
  EXPECT_EQ(e->evidence.data, quote);
  EXPECT_EQ(read_all(root / "user_report_data"), rd);
  auto parsed = attestation::dcap::parse_quote(e->evidence.data);
  ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
  EXPECT_FALSE(parsed->is_tdx());

  // Wrong size of report data, attestation disabled, not in Gramine.
  EXPECT_EQ((*p)->produce(Bytes(63)).status().code(), Code::kInvalidArgument);
  write_all(root / "attestation_type", "none\n");
  EXPECT_EQ(make_producer(c).status().code(), Code::kFailedPrecondition);
  c.attestation_root = d.file("nope");
  EXPECT_EQ(make_producer(c).status().code(), Code::kUnavailable);
}

TEST(GramineProducer, MissingQuoteIsAnError) {
  TempDir d;
  ProducerConfig c;
  c.tee = TeeType::kSgx;
  c.attestation_root = d.path();
  auto p = make_producer(c);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->produce(report_data(0)).status().code(), Code::kNotFound);
}

// ---- the subprocess runner used by the TPM producer ----

TEST(RunProgram, ExitStatusStderrEnvironmentAndTimeout) {
  TempDir d;
  using std::chrono::seconds;
  EXPECT_TRUE(internal::run_program({"true"}, {}, d.path(), seconds(10)).ok());
  Status st = internal::run_program({"sh", "-c", "echo first line >&2; echo second >&2; exit 3"},
                                    {}, d.path(), seconds(10));
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("exit status 3"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("first line"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find("second"), std::string::npos) << st.message();
  // The environment reaches the child; no shell interprets arguments.
  EXPECT_TRUE(internal::run_program({"sh", "-c", "test \"$CUSTOS_X\" = 'a b;c'"},
                                    {{"CUSTOS_X", "a b;c"}}, d.path(), seconds(10))
                  .ok());
  EXPECT_EQ(internal::run_program({"sleep", "5"}, {}, d.path(), seconds(1)).code(),
            Code::kDeadlineExceeded);
  EXPECT_EQ(internal::run_program({"/nonexistent/program"}, {}, d.path(), seconds(1)).code(),
            Code::kNotFound);
}

}  // namespace
}  // namespace custos::agent
