a = "x"
b = 1
c = 1.5
d = true
e = null
