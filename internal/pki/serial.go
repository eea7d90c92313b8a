package pki

import (
	"math/big"
	"strings"
)

// ShownSerial is a serial as people read it: SerialHex (big.Int.Text(16),
// the store's key, which drops a leading zero) in whole bytes, a 0 put in
// front of an odd number of digits. openssl and certmonger print the
// serial whose DER begins 0E 67 as 0E67…: shown as e67…, a search of the
// log or the audit trail for it found nothing (r91 D6). Lookups take
// either form (admin.NormalizeSerial); anything that is no serial in the
// store's form is returned as it is.
func ShownSerial(serialHex string) string {
	if len(serialHex)%2 == 0 || strings.Trim(serialHex, "0123456789abcdef") != "" {
		return serialHex
	}
	return "0" + serialHex
}

// SerialText is n as ShownSerial shows it: lower-case hex in whole bytes.
func SerialText(n *big.Int) string {
	if n == nil {
		return ""
	}
	return ShownSerial(n.Text(16))
}

// ShownRenewedFrom is a RenewedFrom ("issuerID:serialHex") with its
// serial as ShownSerial shows it.
func ShownRenewedFrom(s string) string {
	if issuer, serial, ok := strings.Cut(s, ":"); ok {
		return issuer + ":" + ShownSerial(serial)
	}
	return s
}
