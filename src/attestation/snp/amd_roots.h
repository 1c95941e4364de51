// AMD's SEV-SNP certificate authorities, compiled in (see amd_roots.cpp for provenance). The ARK
// of each product is the pinned root; ASK (signs VCEKs) and ASVK (signs VLEKs) are used when the
// caller supplies no chain of its own.
#pragma once

namespace custos::attestation::snp {

extern const char kMilanArkPem[];
extern const char kMilanAskPem[];
extern const char kMilanAsvkPem[];
extern const char kGenoaArkPem[];
extern const char kGenoaAskPem[];
extern const char kGenoaAsvkPem[];
extern const char kTurinArkPem[];
extern const char kTurinAskPem[];
extern const char kTurinAsvkPem[];

}  // namespace custos::attestation::snp
