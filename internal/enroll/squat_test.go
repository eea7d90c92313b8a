package enroll_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
)

// Transaction IDs are derived from public keys and are no secret: another
// key's request held first under a device's transaction ID (a squatter's,
// with a challenge of its own) neither blocks the device's request at an
// approval profile nor is revealed to it. Each is held, approved or
// rejected on its own, each key's polls and resends answer its own, and a
// rejected squatter leaves nothing behind.
func TestSquattedTransactionIDBlocksNobody(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.ChallengeMode, p.RequireApproval = "approval", enroll.ChallengeOneTime, true
	ctx := context.Background()
	const tx = "tx-of-the-victim"

	for _, decide := range []string{"approve the victim's", "reject the squatter's first"} {
		t.Run(decide, func(t *testing.T) {
			f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"approval": p}, DefaultProfile: "approval"})
			challenge := func() string {
				t.Helper()
				otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "", "test")
				if err != nil {
					t.Fatal(err)
				}
				return otp
			}
			attacker, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			squat := requestBy(t, attacker, "squatter", challenge())
			squat.TransactionID = tx
			res, err := f.svc.Enroll(ctx, squat)
			if err != nil || res.Pending == nil {
				t.Fatalf("the squatter's request: %+v, %v; want held", res, err)
			}
			squatID := res.Pending.ID
			if decide == "reject the squatter's first" {
				if err := f.admin.Reject(ctx, squatID, "squatter", "cli:test"); err != nil {
					t.Fatal(err)
				}
			}

			victimOTP := challenge()
			victim := request(t, victimOTP)
			victim.TransactionID = tx
			res, err = f.svc.Enroll(ctx, victim)
			if err != nil || res.Pending == nil {
				t.Fatalf("the victim's request after the squatter's: %+v, %v; want held", res, err)
			}
			victimID := res.Pending.ID
			if victimID == squatID {
				t.Fatalf("the victim was answered from the squatter's request %s", squatID)
			}
			// A resend (micromdm's scepclient) finds the victim's own.
			if res, err := f.svc.Enroll(ctx, victim); err != nil || res.Pending == nil || res.Pending.ID != victimID {
				t.Fatalf("the victim's resend: %+v, %v; want its request %s pending", res, err, victimID)
			}
			poll := func(key []byte) (*enroll.Result, error) {
				t.Helper()
				return f.svc.PollBy(ctx, pki.ProtocolSCEP, "approval", tx, key)
			}
			victimKey := victim.CSR.RawSubjectPublicKeyInfo
			if res, err := poll(victimKey); err != nil || res.Held == nil || res.Held.ID != victimID {
				t.Fatalf("the victim's poll: %+v, %v; want its request %s", res, err, victimID)
			}
			res, err = poll(squat.CSR.RawSubjectPublicKeyInfo)
			if decide == "reject the squatter's first" {
				if pki.ErrorMessage(err) != "the request was rejected: squatter" {
					t.Errorf("the squatter's poll: %+v, %v; want its rejection", res, err)
				}
			} else if err != nil || res.Held == nil || res.Held.ID != squatID {
				t.Fatalf("the squatter's poll: %+v, %v; want its request %s", res, err, squatID)
			}

			if _, err := f.svc.Approve(ctx, victimID, "cli:test"); err != nil {
				t.Fatalf("approving the victim's request: %v", err)
			}
			res, err = poll(victimKey)
			if err != nil || res.Certificate == nil || res.Certificate.Subject.CommonName != "dev" {
				t.Fatalf("the victim's poll after the approval: %+v, %v; want its certificate", res, err)
			}
			if res, err := f.svc.Enroll(ctx, victim); err != nil || res.Certificate == nil || res.Held == nil || res.Held.ID != victimID {
				t.Fatalf("the victim's resend after the approval: %+v, %v; want its certificate", res, err)
			}
			if decide == "approve the victim's" {
				if res, err := poll(squat.CSR.RawSubjectPublicKeyInfo); err != nil || res.Pending == nil || res.Held.ID != squatID {
					t.Errorf("the squatter's poll after the victim's approval: %+v, %v; want its own, pending", res, err)
				}
			}
		})
	}
}

// requestBy is request for another key and subject.
func requestBy(t *testing.T, k *ecdsa.PrivateKey, cn, challenge string) enroll.Request {
	t.Helper()
	der, err := csr.Create(csr.Template{Subject: pkix.Name{CommonName: cn}}, k)
	if err != nil {
		t.Fatal(err)
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return enroll.Request{CSR: req, Evidence: enroll.Evidence{Challenge: challenge}, Protocol: pki.ProtocolSCEP, TransactionID: "tx", RemoteAddr: "127.0.0.1:1234"}
}
