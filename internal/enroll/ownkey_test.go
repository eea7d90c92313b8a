package enroll_test

import (
	"context"
	"crypto"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// The server never certifies a key of its own (r60 D1): the root's, the
// issuing CA's, the SCEP RA's, or one of its other roles' (an OCSP
// responder's, the HTTPS certificate's), whoever holds it; not issued,
// not held for an approval, with a reason naming whose key it is. A key
// of the device's own is issued as before.
func TestOwnKeysAreNotCertified(t *testing.T) {
	held := pki.DefaultProfile()
	held.Name, held.RequireApproval = "approval", true
	responder := newKey(t)
	f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"default": pki.DefaultProfile(), "approval": held},
		DefaultProfile: "default", ServerKeys: func() []enroll.ServerKey {
			return []enroll.ServerKey{{Role: "the OCSP responder's key", Key: responder.Public()}}
		}})
	ctx := context.Background()
	root, err := keys.LoadKeyFile(filepath.Join(f.dir, "ca", "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, want string
		key        crypto.Signer
	}{
		{"the root's", "root CA's key", root},
		{"the issuing CA's", "issuing CA", f.auth.Issuer.Signer},
		{"the RA's", "SCEP RA's key", f.auth.RA.Key},
		{"the OCSP responder's", "OCSP responder's key", responder},
	} {
		for _, profile := range []string{"default", "approval"} {
			req := namedWithKey(t, c.key, static, "own-key")
			if profile == "approval" {
				otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "approval", "test")
				if err != nil {
					t.Fatal(err)
				}
				req = namedWithKey(t, c.key, otp, "own-key")
				req.Profile = profile
			}
			_, err := f.svc.Enroll(ctx, req)
			if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), c.want) ||
				!strings.Contains(pki.ErrorMessage(err), "never certifies its own keys") {
				t.Errorf("%s key at %s: %v; want badRequest naming %q", c.name, profile, err, c.want)
			}
		}
	}
	certs, _, err := f.st.ListCertificates(ctx, store.CertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range certs {
		if c.Subject == "CN=own-key" {
			t.Errorf("certificate %s issued for a key of the server", c.SerialHex)
		}
	}
	if _, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), static, "own-key")); err != nil {
		t.Errorf("a key of the device's own: %v", err)
	}
}
