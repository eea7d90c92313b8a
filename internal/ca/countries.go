package ca

import "strings"

// iso3166Alpha2 lists the officially assigned ISO 3166-1 alpha-2 codes
// (ISO 3166-1:2020, as kept by the ISO 3166 Maintenance Agency; the list
// has not changed since SS, South Sudan, was added in 2011): 249 codes, a
// line per first letter. Reserved codes are not in it, such as the
// exceptionally reserved UK (the United Kingdom's code is GB), EU and UN,
// and neither are the user-assigned AA, QM-QZ, XA-XZ and ZZ.
const iso3166Alpha2 = `
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
DE DJ DK DM DO DZ
EC EE EG EH ER ES ET
FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
HK HM HN HR HT HU
ID IE IL IM IN IO IQ IR IS IT
JE JM JO JP
KE KG KH KI KM KN KP KR KW KY KZ
LA LB LC LI LK LR LS LT LU LV LY
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
NA NC NE NF NG NI NL NO NP NR NU NZ
OM
PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA
RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
UA UG UM US UY UZ
VA VC VE VG VI VN VU
WF WS
YE YT
ZA ZM ZW
`

// isISO3166Alpha2 reports whether s is one of iso3166Alpha2's codes. Each
// code there is two capitals between white space, so two capitals found
// anywhere in the list are one whole code.
func isISO3166Alpha2(s string) bool {
	return len(s) == 2 && isUpper(s[0]) && isUpper(s[1]) && strings.Contains(iso3166Alpha2, s)
}

func isUpper(b byte) bool { return 'A' <= b && b <= 'Z' }
