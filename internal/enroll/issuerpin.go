package enroll

import (
	"errors"
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

// ErrNoSuchIssuer: an issuer ID, or prefix of one, that names none of the
// issuing CAs given (see MatchIssuerID).
var ErrNoSuchIssuer = errors.New("names none of the issuing CAs")

// MatchIssuerID is the one of ids (issuing CA IDs, the hex SHA-256 of
// their certificates) that is id or starts with it, in any case: how a
// profile's pin and 'scepter ca root crl --revoke' name an issuing CA, by
// the prefix 'scepter ca show', the CRL URLs and 'certs revoke --issuer'
// take. An id that more than one of ids starts with is an error naming
// two; an empty one, or one none starts with, wraps ErrNoSuchIssuer.
func MatchIssuerID(ids []string, id string) (string, error) {
	prefix := strings.ToLower(id)
	found := ""
	for _, have := range ids {
		if prefix == "" || !strings.HasPrefix(have, prefix) {
			continue
		}
		if found != "" && found != have {
			return "", fmt.Errorf("issuer %q names more than one issuing CA (%s and %s); give more of its ID", id, found, have)
		}
		found = have
	}
	if found == "" {
		return "", fmt.Errorf("issuer %q %w", id, ErrNoSuchIssuer)
	}
	return found, nil
}

// PinnedIssuer is the issuing CA among issuers that profile p pins with
// its issuer key: the one whose ID (the hex SHA-256 of its certificate)
// is p.Issuer or starts with it (MatchIssuerID). A pin that names none of
// them, or more than one, is an error saying so; serve checks every
// profile's at start, and an issuance at a profile whose pinned CA is
// gone since is refused as unavailable.
func PinnedIssuer(issuers []*ca.Issuer, p pki.Profile) (*ca.Issuer, error) {
	ids := make([]string, len(issuers))
	for i, iss := range issuers {
		ids[i] = iss.ID
	}
	id, err := MatchIssuerID(ids, p.Issuer)
	if errors.Is(err, ErrNoSuchIssuer) {
		return nil, fmt.Errorf("profile %q: issuer %q names none of this CA's issuing CAs (%s; 'scepter ca show' lists them)", p.Name, p.Issuer, strings.Join(ids, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("profile %q: %w", p.Name, err)
	}
	return issuers[slices.Index(ids, id)], nil
}
