package enroll

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pki"
)

// PinnableIssuers are the issuing CAs a profile may pin at now: the one in
// effect and those before it, never a next one before its switch (which
// GetCACert does not serve, and a discard may still undo).
func PinnableIssuers(a *ca.Authority, now time.Time) []*ca.Issuer {
	next, _, scheduled := a.Next(now)
	return slices.DeleteFunc(a.Issuers(), func(i *ca.Issuer) bool { return scheduled && i == next })
}

// PinnedIssuer is the issuing CA among issuers that profile p pins with
// its issuer key: the one whose ID (the hex SHA-256 of its certificate)
// is p.Issuer or starts with it. A pin that names none of them, or more
// than one, is an error saying so; serve checks every profile's at start,
// and an issuance at a profile whose pinned CA is gone since is refused
// as unavailable.
func PinnedIssuer(issuers []*ca.Issuer, p pki.Profile) (*ca.Issuer, error) {
	pin := strings.ToLower(p.Issuer)
	var found *ca.Issuer
	var ids []string
	for _, i := range issuers {
		ids = append(ids, i.ID)
		if !strings.HasPrefix(i.ID, pin) {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("profile %q: issuer %q names more than one issuing CA (%s and %s); give more of its ID", p.Name, p.Issuer, found.ID, i.ID)
		}
		found = i
	}
	if found == nil {
		return nil, fmt.Errorf("profile %q: issuer %q names none of this CA's issuing CAs (%s; 'scepter ca show' lists them)", p.Name, p.Issuer, strings.Join(ids, ", "))
	}
	return found, nil
}
