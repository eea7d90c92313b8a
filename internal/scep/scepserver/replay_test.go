package scepserver_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/scep/scepserver"
)

// A message answered 503 (here: the issuer not ready) changed nothing, and
// the device sends the same bytes again: the retry runs and is answered,
// after one 503 or several. A copy of the message whose retry was answered
// is answered again with its certificate, and one certificate is issued in
// all.
func TestRetryAfterUnavailableIsNoReplay(t *testing.T) {
	for _, unavailable := range []int{1, 2, 5} {
		var mu sync.Mutex
		failures := unavailable
		ts := newTestServer(t, serverOptions{enroll: enroll.Config{IssuerReady: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			if failures > 0 {
				failures--
				return errors.New("this node lacks the current CA's keys")
			}
			return nil
		}}})
		key := testKey(t, 1)
		der, msg := ts.build(t, reqParams{key: key})
		for i := range unavailable {
			if resp, body := ts.postTo(t, "/scep", der); resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("%d unavailable, send %d: HTTP %d %s, want 503", unavailable, i+1, resp.StatusCode, body)
			}
		}
		resp, body := ts.postTo(t, "/scep", der)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d unavailable, the retry: HTTP %d %s", unavailable, resp.StatusCode, body)
		}
		first, _ := ts.issuedCert(t, ts.parseReply(t, body, msg), msg.SignerCert, key)
		_, body = ts.postTo(t, "/scep", der)
		wantSentAgain(t, ts, "a copy of the answered retry", ts.parseReply(t, body, msg), msg.SignerCert, key, first)
		if n := ts.certCount(t); n != 1 {
			t.Errorf("%d unavailable: %d certificates recorded, want 1", unavailable, n)
		}
	}
}

// Copies of a message answered 503, sent again at once, run one at a time:
// one of them issues, the others are answered with its certificate or told
// to retry (503: they came before its issuance claimed the transaction),
// and those, sent again, get its certificate. One certificate is issued.
func TestCopiesOfARetryAfterUnavailableRunOnce(t *testing.T) {
	var mu sync.Mutex
	failed := false
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{IssuerReady: func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if !failed {
			failed = true
			return errors.New("this node lacks the current CA's keys")
		}
		return nil
	}}})
	key := testKey(t, 1)
	der, msg := ts.build(t, reqParams{key: key})
	if resp, body := ts.postTo(t, "/scep", der); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("HTTP %d %s, want 503", resp.StatusCode, body)
	}
	const copies = 4
	bodies := make([][]byte, copies)
	codes := make([]int, copies)
	var wg sync.WaitGroup
	for i := range copies {
		wg.Go(func() {
			resp, err := http.Post(ts.URL+"/scep?operation=PKIOperation", "application/x-pki-message", bytes.NewReader(der))
			if err == nil {
				defer resp.Body.Close()
				codes[i] = resp.StatusCode
				bodies[i], _ = io.ReadAll(resp.Body)
			}
		})
	}
	wg.Wait()
	var statuses []string
	serials := map[string]bool{}
	for i, body := range bodies {
		if codes[i] == http.StatusServiceUnavailable {
			// Told to retry: sent again now, it meets the certificate.
			_, body = ts.postTo(t, "/scep", der)
			statuses = append(statuses, "503, then")
		}
		rep := ts.parseReply(t, body, msg)
		statuses = append(statuses, string(rep.PKIStatus))
		cert, _ := ts.issuedCert(t, rep, msg.SignerCert, key)
		serials[cert.SerialNumber.String()] = true
	}
	if len(serials) != 1 || ts.certCount(t) != 1 {
		t.Errorf("copies answered %v: %d certificates sent, %d recorded, want 1 and 1", statuses, len(serials), ts.certCount(t))
	}
}

// forgetFails is a service whose store cannot forget a nonce the first
// `fails` times it is asked.
type forgetFails struct {
	scepserver.Service
	mu    sync.Mutex
	fails int
}

func (s *forgetFails) ForgetNonce(ctx context.Context, txID string, nonce []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails > 0 {
		s.fails--
		return errors.New("store unreachable")
	}
	return s.Service.ForgetNonce(ctx, txID, nonce)
}

// A message answered 503 whose nonce the store could not forget then (it
// was down) is not refused as a replay when sent again: the node forgets
// it first and runs it, or answers 503 again while the store still cannot.
func TestRetryAfterUnavailableWhenTheStoreCouldNotForget(t *testing.T) {
	var mu sync.Mutex
	notReady := true
	ts := newTestServer(t, serverOptions{
		enroll: enroll.Config{IssuerReady: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			if notReady {
				notReady = false
				return errors.New("this node lacks the current CA's keys")
			}
			return nil
		}},
		service: func(s scepserver.Service) scepserver.Service { return &forgetFails{Service: s, fails: 2} },
	})
	der, msg := ts.build(t, reqParams{key: testKey(t, 1)})
	for i, want := range []int{http.StatusServiceUnavailable, http.StatusServiceUnavailable} {
		if resp, body := ts.postTo(t, "/scep", der); resp.StatusCode != want {
			t.Fatalf("send %d: HTTP %d %s, want %d", i+1, resp.StatusCode, body, want)
		}
	}
	resp, body := ts.postTo(t, "/scep", der)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the retry once the store forgets: HTTP %d %s", resp.StatusCode, body)
	}
	first, _ := ts.issuedCert(t, ts.parseReply(t, body, msg), msg.SignerCert, testKey(t, 1))
	_, body = ts.postTo(t, "/scep", der)
	wantSentAgain(t, ts, "a copy of the answered retry", ts.parseReply(t, body, msg), msg.SignerCert, testKey(t, 1), first)
	if n := ts.certCount(t); n != 1 {
		t.Errorf("%d certificates recorded, want 1", n)
	}
}

// A message signed by another key, carrying a device's transactionID and
// senderNonce (seen on plain HTTP), is not a replay of the device's
// message and does not use its pair up: the device's message, or its
// byte-identical retry after a 503, is still served, whichever profile the
// other message went to and however it was refused. A copy of the device's
// message, and another message of the device's key with the same pair, are
// replays, answered again with the device's certificate.
func TestAnotherSignerCannotUseUpAPair(t *testing.T) {
	tests := []struct {
		name      string
		otherPath string // where the other signer's message goes
		after503  bool   // the device's first send is answered 503 first
	}{
		{name: "before the device's message", otherPath: "/scep"},
		{name: "before it, at another profile", otherPath: "/scep/other"},
		{name: "between a 503 and its retry", otherPath: "/scep", after503: true},
		{name: "between a 503 and its retry, at another profile", otherPath: "/scep/other", after503: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			unavailable := tc.after503
			other := pki.DefaultProfile()
			other.Name, other.ChallengeMode = "other", "onetime"
			ts := newTestServer(t, serverOptions{enroll: enroll.Config{
				Profiles:       map[string]pki.Profile{"default": pki.DefaultProfile(), "other": other},
				DefaultProfile: "default",
				IssuerReady: func(context.Context) error {
					mu.Lock()
					defer mu.Unlock()
					if unavailable {
						unavailable = false
						return errors.New("this node lacks the current CA's keys")
					}
					return nil
				}}})
			device := testKey(t, 1)
			der, msg := ts.build(t, reqParams{key: device})
			if tc.after503 {
				if resp, body := ts.postTo(t, "/scep", der); resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("the device's first send: HTTP %d %s, want 503", resp.StatusCode, body)
				}
			}

			// Another key, self-signed, with the device's pair and no
			// challenge: refused, after its signature was checked.
			otherDER, otherMsg := ts.build(t, reqParams{key: testKey(t, 2), challenge: "-", path: tc.otherPath,
				txID: msg.TransactionID, nonce: msg.SenderNonce})
			_, body := ts.postTo(t, tc.otherPath, otherDER)
			rep := ts.parseReply(t, body, otherMsg)
			wantFailure(t, rep, scep.BadRequest)
			if !strings.Contains(rep.FailInfoText, "challenge") {
				t.Fatalf("the other signer's message: %q, want a refusal for its missing challenge", rep.FailInfoText)
			}

			resp, body := ts.postTo(t, "/scep", der)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("the device's message: HTTP %d %s", resp.StatusCode, body)
			}
			first, _ := ts.issuedCert(t, ts.parseReply(t, body, msg), msg.SignerCert, device)

			_, body = ts.postTo(t, "/scep", der)
			wantSentAgain(t, ts, "a copy of the device's message", ts.parseReply(t, body, msg), msg.SignerCert, device, first)
			resigned, resignedMsg := ts.build(t, reqParams{key: device, txID: msg.TransactionID, nonce: msg.SenderNonce})
			if bytes.Equal(resigned, der) {
				t.Fatal("the device's second message is the same bytes")
			}
			_, body = ts.postTo(t, "/scep", resigned)
			wantSentAgain(t, ts, "another message of the device's key with its pair", ts.parseReply(t, body, resignedMsg), resignedMsg.SignerCert, device, first)
			if n := ts.certCount(t); n != 1 {
				t.Errorf("%d certificates recorded, want 1", n)
			}
		})
	}
}

func wantReplay(t *testing.T, what string, rep *scep.PKIMessage) {
	t.Helper()
	if rep.PKIStatus != scep.StatusFailure || rep.FailInfo != scep.BadRequest || !strings.Contains(rep.FailInfoText, "replayed") {
		t.Errorf("%s: pkiStatus %s failInfo %s (%s), want a replay", what, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}
}

// wantSentAgain checks rep is SUCCESS with first, the certificate issued
// before, encrypted to recipient's key.
func wantSentAgain(t *testing.T, ts *testServer, what string, rep *scep.PKIMessage, recipient *x509.Certificate, key crypto.Decrypter, first *x509.Certificate) {
	t.Helper()
	if rep.PKIStatus != scep.StatusSuccess {
		t.Errorf("%s: pkiStatus %s failInfo %s (%s), want SUCCESS with the certificate issued before", what, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
		return
	}
	if got, _ := ts.issuedCert(t, rep, recipient, key); !got.Equal(first) {
		t.Errorf("%s: answered with serial %x, want %x, issued before", what, got.SerialNumber, first.SerialNumber)
	}
}
