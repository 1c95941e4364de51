kbs_addr = "http://127.0.0.1:8200"
tee = "tpm"
tcti = "swtpm:host=127.0.0.1,port=2321"
ak_context = "0x81010002"
pcrs = "sha256:0,7"
key "k" { id = "x" }
