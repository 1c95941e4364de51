a = <<EOF
no end
