package main

import (
	"errors"
	"flag"
	"strings"

	"github.com/scepter/scepter/internal/client"
)

// errFingerprintForm says what --ca-fingerprint takes; the agent's
// ca_fingerprint says the same.
var errFingerprintForm = errors.New("want sha256: followed by 64 hex digits (the CA certificate's SHA-256, as 'scepter serve' prints it; colons allowed)")

// fingerprintValue is a --ca-fingerprint, checked when set: a malformed
// one is refused with the other flags (exit 2), before anything is sent,
// rather than found when the server's CA certificates are compared.
// An empty value pins nothing, as the flag left out.
type fingerprintValue struct{ p *string }

func (v fingerprintValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v fingerprintValue) Set(s string) error {
	if _, ok := client.NormalizeFingerprint(s); !ok && strings.TrimSpace(s) != "" {
		return errFingerprintForm
	}
	*v.p = s
	return nil
}

// fingerprintVar registers --ca-fingerprint on fs, into p.
func fingerprintVar(fs *flag.FlagSet, p *string, usage string) {
	fs.Var(fingerprintValue{p}, "ca-fingerprint", usage)
}
