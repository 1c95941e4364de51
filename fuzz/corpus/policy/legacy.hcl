path "sys/*" { policy = "deny" }
path "secret/*" { policy = "write" }
path "auth/token/create" { policy = "sudo" }
