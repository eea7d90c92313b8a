package scepserver_test

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep/scepserver"
)

// Devices and MDMs set up for NDES ask at /certsrv/mscep/mscep.dll in any
// letter case (and Windows' NDES client below it, at
// mscep.dll/pkiclient.exe), by GET and POST like any SCEP path, for the
// default profile or Options.NDESProfile.
func TestNDESPath(t *testing.T) {
	def, cisco := pki.DefaultProfile(), pki.DefaultProfile()
	cisco.Name, cisco.IncludeCACert = "cisco", true // its CertRep holds the chain: 3 certificates
	profiles := enroll.Config{Profiles: map[string]pki.Profile{"default": def, "cisco": cisco}, DefaultProfile: "default"}
	// IIS serves them in any case; devices and MDMs spell them every way.
	paths := []string{"/certsrv/mscep/mscep.dll", "/certsrv/mscep/mscep.dll/pkiclient.exe", "/CertSrv/mscep/mscep.dll", "/CertSrv/mscep/mscep.dll/pkiclient.exe",
		"/CERTSRV/MSCEP/MSCEP.DLL", "/certsrv/mscep/mscep.DLL/PKIClient.exe"}
	for _, tt := range []struct {
		name        string
		ndesProfile string
		wantCerts   int
	}{
		{"default profile", "", 1},
		{"NDES profile", "cisco", 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, serverOptions{enroll: profiles, scep: scepserver.Options{NDESProfile: tt.ndesProfile}})
			for i, path := range paths {
				resp, caps := get(t, ts.URL+path+"?operation=GetCACaps")
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(caps), "POSTPKIOperation") {
					t.Fatalf("GET %s GetCACaps: HTTP %d %q", path, resp.StatusCode, caps)
				}
				challenge := "" // the static challenge, the default profile's
				if tt.ndesProfile != "" {
					otp, _, err := ts.Admin.NewChallenge(context.Background(), time.Hour, tt.ndesProfile, "test")
					if err != nil {
						t.Fatal(err)
					}
					challenge = otp
				}
				key := testKey(t, i)
				der, msg := ts.build(t, reqParams{key: key, challenge: challenge})
				var body []byte
				if i%2 == 0 {
					resp, body = ts.postTo(t, path, der)
				} else {
					resp, body = get(t, ts.URL+path+"?operation=PKIOperation&message="+url.QueryEscape(base64.StdEncoding.EncodeToString(der)))
				}
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s PKIOperation: HTTP %d: %s", path, resp.StatusCode, body)
				}
				rep := ts.parseReply(t, body, msg)
				ts.issuedCert(t, rep, msg.SignerCert, key)
				env, err := cms.ParseEnvelopedData(rep.SignedData.Content)
				if err != nil {
					t.Fatal(err)
				}
				inner, err := env.DecryptKeyTransport(msg.SignerCert, key)
				if err != nil {
					t.Fatal(err)
				}
				sd, err := cms.ParseSignedData(inner)
				if err != nil {
					t.Fatal(err)
				}
				if len(sd.Certificates) != tt.wantCerts {
					t.Errorf("%s: %d certificates in the CertRep, want %d (the profile's)", path, len(sd.Certificates), tt.wantCerts)
				}
			}
		})
	}
	// A profile that does not exist is refused at start, not at the first device.
	ts := newTestServer(t, serverOptions{})
	if _, err := scepserver.New(ts.Service, ts.Clock, slog.New(slog.DiscardHandler), scepserver.Options{NDESProfile: "nonexistent"}); err == nil {
		t.Error("New accepted an NDES profile that does not exist")
	}
}
