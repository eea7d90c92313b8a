package pki

import (
	"encoding/hex"
	"testing"
	"time"
)

// The chain's hashes are stored in every audit trail: they must never
// change. The vectors were computed by the implementation before
// AuditChainTail and AuditChainLink split it (and by PostgreSQL's
// audit_append, which must agree: internal/store/postgres).
func TestAuditChainHashVectors(t *testing.T) {
	prev, _ := hex.DecodeString("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	for _, tc := range []struct {
		name string
		prev []byte
		e    AuditEvent
		want string
	}{
		{"every field", AuditGenesis, AuditEvent{ID: 42, Time: time.Date(2026, 6, 1, 12, 0, 0, 123456000, time.UTC),
			Type: EventIssued, Actor: "scep:203.0.113.7", Profile: "default", SerialHex: "7f3a", IssuerID: "issuer-1",
			Subject: "CN=device-1,O=Ex\x00ample", TransactionID: "tx-1", Outcome: "success", Detail: "renews issuer-1:01"},
			"6dbd659c6f7f829184c9c16f7997bff89f770e4b0ff4c4de275b31d314e02ebd"},
		{"zero event", prev, AuditEvent{ID: 1}, "b8b97bb6df2cd8002b9db32c14a13d840411067ba2cab6bb8a1d31ffed549b5a"},
	} {
		if got := hex.EncodeToString(AuditChainHash(tc.prev, tc.e)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
		if got := hex.EncodeToString(AuditChainLink(tc.prev, tc.e.ID, AuditChainTail(tc.e))); got != tc.want {
			t.Errorf("%s, from the tail: %s, want %s", tc.name, got, tc.want)
		}
	}
}
