package console_test

import (
	"crypto/x509"
	"fmt"
	"testing"

	"github.com/scepter/scepter/internal/console"
	"github.com/scepter/scepter/internal/pki"
)

// A serial whose first byte is below 0x10 is shown in whole bytes on the
// certificate list, the certificate's page and the audit log (0e67…, as
// openssl prints it), not without its leading zero; the page and the
// audit filter take either form, and links keep the store's (r91 D6).
func TestSerialsShownInWholeBytes(t *testing.T) {
	e := newEnv(t, console.Options{})
	var cert *x509.Certificate
	for i := 0; cert == nil; i++ {
		if i == 400 {
			t.Fatal("no serial with an odd number of hex digits in 400 issuances")
		}
		if c := e.issue(fmt.Sprintf("dev-%d", i)); len(c.SerialNumber.Text(16))%2 == 1 {
			cert = c
		}
	}
	stored := cert.SerialNumber.Text(16)
	padded := "0" + stored
	if got := pki.SerialText(cert.SerialNumber); got != padded {
		t.Fatalf("SerialText = %q", got)
	}
	b := e.as("auditor")
	for _, tc := range []struct {
		page string
		want []string
	}{
		{"/ui/certificates", []string{`<code class="serial">` + padded + `</code>`}},
		{"/ui/certificates/" + stored, []string{`<code id="cert-serial">` + padded + `</code>`}},
		{"/ui/certificates/" + padded, []string{`<code id="cert-serial">` + padded + `</code>`, `href="/ui/audit?serial=` + stored + `"`}},
		{"/ui/audit?serial=" + padded, []string{`<code>` + padded + `</code></a>`, `href="/ui/certificates/` + stored}},
		{"/ui/audit?serial=" + stored, []string{`<code>` + padded + `</code></a>`}},
	} {
		res := b.get(tc.page)
		expectStatus(t, tc.page, res, 200)
		expectBody(t, tc.page, res, tc.want...)
		expectNotBody(t, tc.page, res, ">"+stored+"<")
	}
}
