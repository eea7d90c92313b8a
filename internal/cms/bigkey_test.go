package cms

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"
)

// A signer key beyond MaxRSABits is refused before any arithmetic: a key of
// a million bits fits in a SCEP message, and verifying with it costs half a
// minute of CPU.
func TestHugeRSAKeyIsNotVerified(t *testing.T) {
	n := new(big.Int).Lsh(big.NewInt(1), 1_000_000)
	n.Add(n, big.NewInt(1))
	huge := &rsa.PublicKey{N: n, E: 65537}
	start := time.Now()
	err := verifySignature(huge, pkix.AlgorithmIdentifier{Algorithm: oidSHA256WithRSA}, crypto.SHA256, []byte("msg"), make([]byte, len(n.Bytes())))
	if !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Fatalf("verify with a %d-bit key: %v, want ErrUnsupportedAlgorithm", n.BitLen(), err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the refusal took %s", d)
	}
}
