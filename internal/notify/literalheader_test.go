package notify_test

import (
	"bytes"
	"context"
	"mime"
	netmail "net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/notify"
	"github.com/scepter/scepter/internal/notify/notifytest"
	"github.com/scepter/scepter/internal/pki"
)

// TestMailHeadersShowDeviceTextLiterally: a certificate's subject and its
// email SANs are the device's text. An RFC 2047 encoded-word written in
// plain ASCII in them must not be decoded by a mail reader into other
// text (a bidirectional override, a line break, any wording): the Subject
// a reader decodes is the subject as the inventory holds it, and no To
// address decodes into anything but what it is.
func TestMailHeadersShowDeviceTextLiterally(t *testing.T) {
	long := "CN=" + strings.Repeat("=?UTF-8?Q?=E2=80=AE?=", 20)
	tests := []struct {
		name, subject string
		// wantRaw, when set, is a part of the raw Subject header: plain
		// text stays readable as it is.
		wantRaw string
	}{
		{name: "plain", subject: "CN=laptop-17,O=Acme", wantRaw: "CN=laptop-17,O=Acme"},
		{name: "Q word without spaces", subject: "CN==?UTF-8?Q?laptop=E2=80=AE_renewed=2C_ignore=0D=0A?="},
		{name: "B word between spaces", subject: "CN=printer =?UTF-8?B?4oCuIHJlbmV3ZWQgLSBubyBhY3Rpb24gbmVlZGVk?= x"},
		{name: "word and non-ASCII", subject: "CN=café =?utf-8?q?=E2=80=AE?=,O=Zürich"},
		{name: "half a word", subject: "CN=a=?b"},
		{name: "long", subject: long},
	}
	sink := notifytest.StartSMTP(t, notifytest.SMTPOptions{})
	m, err := notify.NewSMTP(notify.SMTPConfig{URL: "smtp://" + sink.Addr, From: "scepter@ca.example.com", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const (
		ops        = "pki-ops@example.com"
		owner      = "owner@example.com"
		wordyOwner = "=?UTF-8?Q?=E2=80=AE?=@example.com"
	)
	p := pki.DefaultProfile()
	p.NotifyTo, p.NotifyOwner = []string{ops}, true
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pki.Certificate{SerialHex: "0a01", IssuerID: issuer, Issuer: "CN=Test Issuing CA", Subject: tt.subject,
				SANs:      []string{`email:"=?UTF-8?Q?=E2=80=AE_PKI_team?=" <` + owner + `>`, "email:" + wordyOwner},
				NotBefore: t0, NotAfter: t0.Add(6*day + time.Hour), Status: pki.StatusValid, Profile: "default"}
			if err := m.Send(context.Background(), notify.Message{ID: "x:0a01:1", Certificate: c, Profile: p, Threshold: 7 * day, Time: t0}); err != nil {
				t.Fatal(err)
			}
			mails := sink.Mails()
			if len(mails) != i+1 {
				t.Fatalf("the sink holds %d mails, want %d", len(mails), i+1)
			}
			got := mails[i]
			msg, err := netmail.ReadMessage(bytes.NewReader(got.Data))
			if err != nil {
				t.Fatal(err)
			}
			raw := msg.Header.Get("Subject")
			decoded, err := new(mime.WordDecoder).DecodeHeader(raw)
			if err != nil {
				t.Fatalf("Subject %q does not decode: %v", raw, err)
			}
			shown := []rune(tt.subject)
			if len(shown) > 200 {
				shown = append(shown[:199], '…')
			}
			if want := "[scepter] Certificate " + string(shown) + " expires in 6 days"; decoded != want {
				t.Errorf("Subject as a reader shows it:\n %q\nwant\n %q\n(raw %q)", decoded, want, raw)
			}
			if tt.wantRaw != "" && !strings.Contains(raw, tt.wantRaw) {
				t.Errorf("raw Subject %q does not show %q as it is", raw, tt.wantRaw)
			}
			to, err := msg.Header.AddressList("To") // decodes display names
			if err != nil {
				t.Fatalf("To %q: %v", msg.Header.Get("To"), err)
			}
			var toAddrs []string
			for _, a := range to {
				if a.Name != "" || strings.Contains(a.Address, "=?") {
					t.Errorf("To holds %q: device text a reader decodes", a.String())
				}
				toAddrs = append(toAddrs, a.Address)
			}
			if !slices.Equal(toAddrs, []string{ops, owner}) {
				t.Errorf("To %q, want %q", toAddrs, []string{ops, owner})
			}
			if !slices.Equal(got.To, []string{ops, owner, wordyOwner}) {
				t.Errorf("envelope recipients %q, want %q (the last as a blind copy)", got.To, []string{ops, owner, wordyOwner})
			}
		})
	}
}
