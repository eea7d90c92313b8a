package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
)

// A SCEP server's 3xx is never followed (r117 D1, D2): an https URL does
// not go on over plain http, where whoever answers could hand out its own
// RA and read the challenge, and a 301 or 302 on the PKIOperation POST does
// not come back as a GET without the message. The refusal names the
// operation, the status and where the server redirects, and nothing
// reaches the target.
func TestSCEPRedirectIsRefusedNotFollowed(t *testing.T) {
	now := time.Date(2031, 3, 14, 9, 0, 0, 0, time.UTC) // pinned; TLS checks run at the client's clock
	ours := newTLSTestCA(t, "Our CA", now)
	var reached atomic.Int32 // requests that reached the redirects' target
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		http.Error(w, "should not be asked", http.StatusTeapot)
	}))
	t.Cleanup(plain.Close)
	// redirectFrom names the first operation the TLS front redirects;
	// those before it are answered, as a front that relays GetCACaps and
	// GetCACert but sends PKIOperation elsewhere.
	var redirectFrom atomic.Value
	var status atomic.Int32
	var location atomic.Value
	order := map[string]int{"GetCACaps": 0, "GetCACert": 1, "PKIOperation": 2}
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := r.URL.Query().Get("operation")
		if order[op] >= order[redirectFrom.Load().(string)] {
			w.Header().Set("Location", location.Load().(string)+"?"+r.URL.RawQuery)
			w.WriteHeader(int(status.Load()))
			return
		}
		switch op {
		case "GetCACaps":
			w.Write([]byte("POSTPKIOperation\nSHA-256\nAES\n"))
		case "GetCACert":
			der, _ := cms.DegenerateCertificates([]*x509.Certificate{ours.cert})
			w.Header().Set("Content-Type", "application/x-x509-ca-ra-cert")
			w.Write(der)
		}
	}))
	front.TLS = &tls.Config{Certificates: []tls.Certificate{ours.serverPair(t, now)}}
	front.StartTLS()
	t.Cleanup(front.Close)
	roots := x509.NewCertPool()
	roots.AddCert(ours.cert)
	postPKIOperation := func(c *SCEP) error {
		_, err := c.pkiOperation(context.Background(), Caps{"postpkioperation": true}, []byte{0x30, 0})
		return err
	}
	for _, tt := range []struct {
		name         string
		redirectFrom string
		status       int
		location     string
		fingerprint  string // else Roots (--cacert)
		fromConfig   bool
		do           func(*SCEP) error
		want         []string
	}{
		{"--cacert, every operation to plain http", "GetCACaps", http.StatusTemporaryRedirect, plain.URL + "/scep", "", false,
			func(c *SCEP) error { _, err := c.GetCACaps(context.Background()); return err },
			[]string{"GetCACaps: HTTP 307: the server redirects to " + plain.URL + "/scep?operation=GetCACaps", "it leaves https for plain http"}},
		{"--ca-fingerprint, PKIOperation to plain http", "PKIOperation", http.StatusTemporaryRedirect, plain.URL + "/scep", "pin", false,
			func(c *SCEP) error {
				if _, err := c.GetCACaps(context.Background()); err != nil {
					return err
				}
				return postPKIOperation(c)
			},
			[]string{"PKIOperation: HTTP 307: the server redirects to " + plain.URL, "it leaves https for plain http"}},
		{"--ca-fingerprint, the bootstrap's GetCACert to plain http", "GetCACert", http.StatusFound, plain.URL + "/scep", "pin", false,
			func(c *SCEP) error { _, err := c.GetCACaps(context.Background()); return err },
			[]string{"GetCACert: HTTP 302: the server redirects to " + plain.URL}},
		{"302 on the POST, to https elsewhere", "PKIOperation", http.StatusFound, "https://other.example/scep", "", false, postPKIOperation,
			[]string{"PKIOperation: HTTP 302: the server redirects to https://other.example/scep?operation=PKIOperation",
				"give --url https://other.example/scep if you trust it"}},
		{"301 on the POST, the agent's url", "PKIOperation", http.StatusMovedPermanently, "https://other.example/scep", "", true, postPKIOperation,
			[]string{"PKIOperation: HTTP 301", `set url = "https://other.example/scep" for this certificate in the configuration file if you trust it`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			redirectFrom.Store(tt.redirectFrom)
			status.Store(int32(tt.status))
			location.Store(tt.location)
			reached.Store(0)
			c := &SCEP{URL: front.URL + "/scep", Now: func() time.Time { return now }, URLFromConfig: tt.fromConfig}
			if tt.fingerprint != "" {
				c.Fingerprint = Fingerprint(ours.cert)
			} else {
				c.Roots = roots
			}
			err := tt.do(c)
			var re *RedirectError
			if !errors.As(err, &re) || re.Status != tt.status {
				t.Fatalf("err = %v, want a refused HTTP %d", err, tt.status)
			}
			for _, w := range append(tt.want, "scepter does not follow redirects (the challenge and the request must go only where the URL says)") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			if n := reached.Load(); n != 0 {
				t.Errorf("the redirect's target was asked %d times, want never", n)
			}
		})
	}
}
