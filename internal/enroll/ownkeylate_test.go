package enroll

import (
	"fmt"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// The store's own-key refusal names the key as the in-memory check
// (ca.Authority.OwnKeyRole) would: an RA's, or an issuing CA's that the
// store records (a next CA of 'ca rollover' before the node reloads).
func TestOwnKeyLateNamesTheKey(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"RA", &store.OwnKeyError{Profile: RAProfileName, Subject: "CN=RA"}, "the SCEP RA's key (CN=RA)"},
		{"issuing CA", &store.OwnKeyError{IssuerID: "ab12", Subject: "CN=Issuing CA 2"}, "the key of the issuing CA CN=Issuing CA 2"},
		{"issuing CA whose certificate did not parse", &store.OwnKeyError{IssuerID: "ab12"}, "the key of the issuing CA ab12"},
		{"not read", &store.OwnKeyError{}, "the key of one of this server's own certificates"},
		{"wrapped", fmt.Errorf("postgres: record issuance: %w", &store.OwnKeyError{IssuerID: "ab12", Subject: "CN=I"}), "the key of the issuing CA CN=I"},
	}
	for _, tc := range tests {
		err := ownKeyLate(tc.err)
		msg := pki.ErrorMessage(err)
		if pki.ErrorCode(err) != pki.EBadRequest || !strings.HasPrefix(msg, "the request's public key is "+tc.want+": this server never certifies its own keys") {
			t.Errorf("%s: %v; want badRequest naming %q", tc.name, err, tc.want)
		}
	}
}
