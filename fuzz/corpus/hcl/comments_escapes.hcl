# c
// c
/* c
*/ a = "\u00e9\ud83d\ude00\U0001F600\n\t\"\\"
