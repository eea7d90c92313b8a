package scepserver_test

import (
	"maps"
	"net/http"
	"sync"
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
)

// A CertPoll's IssuerAndSubject names the held request as the held
// request's match compares names (csr.SameHeldName, RFC 5280 §7.1): a
// device polling as CN=AP-1 for a request held as CN=ap-1 is answered
// about it, as its PKCSReq sent again is; a serialNumber in another case,
// or another name, is still not the request.
func TestCertPollNamesTheHeldSubjectAsTheHeldMatchDoes(t *testing.T) {
	approval := pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"approval": approval}, DefaultProfile: "approval"}})
	const held = "CN=ap-1,O=Acme Corp,SERIALNUMBER=Ab12"
	key := testKey(t, 1)
	for i, tc := range []struct {
		name, polled string
		pending      bool
	}{
		{"the same name", held, true},
		{"CN and O in another case", "CN=AP-1,O=ACME CORP,SERIALNUMBER=Ab12", true},
		{"a doubled inner space", "CN=ap-1,O=Acme  Corp,SERIALNUMBER=Ab12", true},
		{"serialNumber in another case", "CN=ap-1,O=Acme Corp,SERIALNUMBER=AB12", false},
		{"another CN", "CN=ap-2,O=Acme Corp,SERIALNUMBER=Ab12", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			txID := "tx-held-name-" + string(rune('a'+i))
			base := reqParams{key: key, subject: held, path: "/scep/approval", txID: txID}
			if _, rep := ts.exchange(t, base); rep.PKIStatus != scep.StatusPending {
				t.Fatalf("PKCSReq: pkiStatus %s (%s), want PENDING", rep.PKIStatus, rep.FailInfoText)
			}
			subject, err := csr.ParseDN(tc.polled)
			if err != nil {
				t.Fatal(err)
			}
			content, err := scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, subject)
			if err != nil {
				t.Fatal(err)
			}
			poll := base
			poll.msgType, poll.content = scep.CertPoll, content
			_, rep := ts.exchange(t, poll)
			if tc.pending {
				if rep.PKIStatus != scep.StatusPending {
					t.Errorf("CertPoll naming %q for %q: pkiStatus %s failInfo %s (%s), want PENDING", tc.polled, held, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
				}
				return
			}
			wantFailure(t, rep, scep.BadCertID)
		})
	}
}

// outcomeCounter counts the enrollment service's outcomes by result, as
// scepter_enrollments_total does.
type outcomeCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *outcomeCounter) Enrolled(o enroll.Outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[o.Result]++
}

func (c *outcomeCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	counts := c.counts
	c.counts = nil
	return counts
}

// A message sent again byte for byte is one call, counted once as what it
// is: a PKCSReq resent while held is a poll of its held request, not a
// second pending enrollment, and the server's look-up of whether a replay
// asks about a held request (or about nothing held) counts nothing of its
// own.
func TestMessageSentAgainAsIsIsCountedOnce(t *testing.T) {
	def, approval := pki.DefaultProfile(), pki.DefaultProfile()
	approval.Name, approval.RequireApproval = "approval", true
	counter := &outcomeCounter{}
	ts := newTestServer(t, serverOptions{enroll: enroll.Config{Profiles: map[string]pki.Profile{"default": def, "approval": approval},
		DefaultProfile: "default", Observer: counter}})
	send := func(path string, der []byte, msg *scep.PKIMessage) *scep.PKIMessage {
		t.Helper()
		resp, body := ts.postTo(t, path, der)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
		}
		return ts.parseReply(t, body, msg)
	}
	pollOf := func(p reqParams) reqParams {
		subject, err := csr.ParseDN("CN=device-1,O=Acme") // build's default
		if err != nil {
			t.Fatal(err)
		}
		content, err := scep.MarshalIssuerAndSubject(ts.Authority.Issuer.Cert.RawSubject, subject)
		if err != nil {
			t.Fatal(err)
		}
		p.msgType, p.content = scep.CertPoll, content
		return p
	}
	held := reqParams{key: testKey(t, 2), path: "/scep/approval", txID: "tx-counted-held"}
	heldPoll := pollOf(held)
	for _, tc := range []struct {
		name string
		msg  reqParams
		// first and again are the results the first send and its
		// byte-identical copy are counted as.
		first, again map[string]int
		want         scep.PKIStatus
	}{
		{"PKCSReq held for approval", held, map[string]int{enroll.ResultPending: 1}, map[string]int{enroll.ResultPolled: 1}, scep.StatusPending},
		{"CertPoll of the held request", heldPoll, map[string]int{enroll.ResultPolled: 1}, map[string]int{enroll.ResultPolled: 1}, scep.StatusPending},
		{"PKCSReq issued at once", reqParams{key: testKey(t, 3), txID: "tx-counted-issued"},
			map[string]int{enroll.ResultIssued: 1}, map[string]int{enroll.ResultReanswered: 1}, scep.StatusSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.msg.path
			if path == "" {
				path = "/scep"
			}
			der, msg := ts.build(t, tc.msg)
			counter.take() // what an earlier case left
			for i, want := range []map[string]int{tc.first, tc.again} {
				if rep := send(path, der, msg); rep.PKIStatus != tc.want {
					t.Fatalf("send %d: pkiStatus %s failInfo %s (%s), want %s", i+1, rep.PKIStatus, rep.FailInfo, rep.FailInfoText, tc.want)
				}
				if got := counter.take(); !maps.Equal(got, want) {
					t.Errorf("send %d counted %v, want %v", i+1, got, want)
				}
			}
		})
	}
}
