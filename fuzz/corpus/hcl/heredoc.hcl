h = <<EOF
line
EOF
i = <<-EOT
    x
    EOT
