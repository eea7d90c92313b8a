package scepserver_test

import (
	"bytes"
	"context"
	"log/slog"
	"math/big"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
)

// A failure after the envelope was decrypted (its content is no CSR,
// IssuerAndSubject or IssuerAndSerialNumber) is answered as an envelope
// that does not open, on purpose (no oracle), but the log line and the
// audit trail give the operator the real cause, where they said "could not
// decrypt the message envelope" too, though it was decrypted (r122). An
// envelope that does not open is still logged as such.
func TestFailureAfterDecryptionIsLoggedAsItIs(t *testing.T) {
	ctx := context.Background()
	var logged syncBuffer
	ts := newTestServer(t, serverOptions{log: slog.New(slog.NewTextHandler(&logged, nil))})
	signerKey := testKey(t, 0)
	signer := ts.enrollCert(t, signerKey, "CN=after-decryption,O=Acme")
	negative, err := scep.MarshalIssuerAndSerial(signer.RawIssuer, big.NewInt(-5))
	if err != nil {
		t.Fatal(err)
	}
	const told = "could not decrypt the message envelope"
	tests := []struct {
		name   string
		p      reqParams
		reason string // in the log line's and the audit event's reason
	}{
		{"PKCSReq, no CSR inside", reqParams{key: testKey(t, 1), content: []byte("not a CSR")},
			"the envelope was decrypted, but its content is not a PKCS#10 certificate request Go can read"},
		{"CertPoll, no IssuerAndSubject inside", reqParams{key: testKey(t, 1), msgType: scep.CertPoll, content: []byte{0x30, 0x03, 0x02, 0x01, 0x01}},
			"the envelope was decrypted, but its content is not an IssuerAndSubject"},
		{"GetCert, a negative serial", reqParams{key: signerKey, signerCert: signer, signerKey: signerKey, msgType: scep.GetCert, content: negative},
			"the envelope was decrypted, but its content is not an IssuerAndSerialNumber (scep: IssuerAndSerialNumber's serial -5 is not positive)"},
		{"GetCRL, garbage", reqParams{key: signerKey, signerCert: signer, signerKey: signerKey, msgType: scep.GetCRL, content: []byte("garbage")},
			"the envelope was decrypted, but its content is not an IssuerAndSerialNumber"},
		{"an envelope that does not open", reqParams{key: testKey(t, 1), envelope: func(env []byte) []byte {
			env = bytes.Clone(env)
			env[len(env)-1] ^= 0xff // the last block of the encrypted content
			return env
		}}, told},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, rep := ts.exchange(t, tt.p)
			wantFailure(t, rep, scep.BadMessageCheck)
			if rep.FailInfoText != told {
				t.Errorf("failInfoText %q, want %q", rep.FailInfoText, told)
			}
			line := ""
			for l := range strings.SplitSeq(logged.String(), "\n") {
				if strings.Contains(l, "scep: FAILURE") && strings.Contains(l, msg.TransactionID) {
					line = l
				}
			}
			if !strings.Contains(line, `reason="`+tt.reason) {
				t.Errorf("log line %q,\nwant reason %q", line, tt.reason)
			}
			if tt.reason != told && !strings.Contains(line, `told="`+told+`"`) {
				t.Errorf("log line %q does not say what the client was told", line)
			}
			evs, err := ts.Store.ListAudit(ctx, store.AuditFilter{Type: pki.EventRefused, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var reasons []string
			for _, e := range evs {
				if e.TransactionID == msg.TransactionID {
					reasons = append(reasons, e.Reason)
				}
			}
			if len(reasons) != 1 || !strings.HasPrefix(reasons[0], "bad_message_check: "+tt.reason) {
				t.Errorf("audit reasons %q, want one with %q", reasons, tt.reason)
			}
		})
	}
}
