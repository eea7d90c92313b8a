package pki

// RFC 5280 §5.3.1 CRLReason codes. Code 7 is unused.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonCACompromise         = 2
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonCertificateHold      = 6
	ReasonRemoveFromCRL        = 8
	ReasonPrivilegeWithdrawn   = 9
	ReasonAACompromise         = 10
)

// reasonNames are the RFC 5280 names of the CRLReason codes, the one
// table every package that names a reason reads.
var reasonNames = map[int]string{
	ReasonUnspecified:          "unspecified",
	ReasonKeyCompromise:        "keyCompromise",
	ReasonCACompromise:         "cACompromise",
	ReasonAffiliationChanged:   "affiliationChanged",
	ReasonSuperseded:           "superseded",
	ReasonCessationOfOperation: "cessationOfOperation",
	ReasonCertificateHold:      "certificateHold",
	ReasonRemoveFromCRL:        "removeFromCRL",
	ReasonPrivilegeWithdrawn:   "privilegeWithdrawn",
	ReasonAACompromise:         "aACompromise",
}

// ReasonName is RFC 5280's name of a CRLReason code, and false for a code
// RFC 5280 does not define.
func ReasonName(code int) (string, bool) {
	name, ok := reasonNames[code]
	return name, ok
}

// CAListingIsCompromise says whether an issuing CA the root's CRL lists
// with reason may have its key in other hands: keyCompromise,
// cACompromise, aACompromise, or no reason given (unspecified: the
// cautious reading). Any other reason (cessationOfOperation, superseded,
// affiliationChanged, privilegeWithdrawn) retired it without one. OCSP
// answers the CA's certificates by it, and a listing it counts as a
// compromise is never changed to one it does not: one rule for both, so
// that what relying parties were told of a compromise is not taken back.
func CAListingIsCompromise(reason int) bool {
	switch reason {
	case ReasonCessationOfOperation, ReasonSuperseded, ReasonAffiliationChanged, ReasonPrivilegeWithdrawn:
		return false
	}
	return true
}
