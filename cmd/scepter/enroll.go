package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/keys"
)

type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func cmdEnroll(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "enroll", "enroll --url URL --challenge X --subject 'CN=device-1,O=Acme' --out cert.pem --key-out key.pem [flags]")
	var (
		serverURL, challenge, challengeFile, subject, keyType, fingerprint string
		out, keyOut, chainOut                                              string
		dnsNames                                                           stringList
		allowDES                                                           bool
	)
	fs.StringVar(&serverURL, "url", "", "SCEP URL, e.g. http://127.0.0.1:8080/scep")
	fs.StringVar(&challenge, "challenge", "", "challenge password (prefer SCEPTER_CHALLENGE or --challenge-file)")
	fs.StringVar(&challengeFile, "challenge-file", "", "file holding the challenge password")
	fs.StringVar(&subject, "subject", "", "certificate subject, e.g. 'CN=device-1,O=Acme'")
	fs.Var(&dnsNames, "dns", "DNS name for the subject alternative name (repeatable, or comma-separated)")
	fs.StringVar(&keyType, "key-type", "rsa2048", "key type: rsa2048, rsa3072, rsa4096 (SCEP needs RSA to receive the reply)")
	fs.StringVar(&fingerprint, "ca-fingerprint", "", "expected CA fingerprint (sha256:HEX); the enrollment stops if no CA certificate matches")
	fs.StringVar(&out, "out", "cert.pem", "where to write the certificate")
	fs.StringVar(&keyOut, "key-out", "key.pem", "where to write the private key (mode 0600)")
	fs.StringVar(&chainOut, "chain-out", "", "where to write the CA chain (default: beside --out as chain.pem)")
	fs.BoolVar(&allowDES, "allow-insecure-des", false, "send single DES to a server that offers neither AES nor DES3")
	if err := parseFlags(fs, e, args, 0); err != nil {
		return err
	}
	if serverURL == "" {
		return usageError{"--url is required"}
	}
	if subject == "" && len(dnsNames) == 0 {
		return usageError{"--subject (or at least one --dns) is required"}
	}
	if challengeFile != "" {
		b, err := os.ReadFile(challengeFile)
		if err != nil {
			return fmt.Errorf("challenge file: %w", err)
		}
		challenge = strings.TrimSpace(string(b))
	}
	if !keys.ValidKeyType(keyType) {
		return usageError{fmt.Sprintf("--key-type %q is not known", keyType)}
	}
	if !strings.HasPrefix(keyType, "rsa") {
		return usageError{fmt.Sprintf("--key-type %s: SCEP replies can only be encrypted to RSA keys for now; use rsa2048, rsa3072 or rsa4096", keyType)}
	}
	name, err := parseSubject(subject)
	if err != nil {
		return usageError{err.Error()}
	}
	if chainOut == "" {
		chainOut = filepath.Join(filepath.Dir(out), "chain.pem")
	}

	c := &client.SCEP{URL: serverURL, AllowInsecureDES: allowDES, Warnf: func(format string, args ...any) {
		fmt.Fprintf(e.stderr, "warning: "+format+"\n", args...)
	}}
	caps, err := c.GetCACaps(ctx)
	if err != nil {
		return fmt.Errorf("GetCACaps: %w", err)
	}
	caCerts, err := c.GetCACert(ctx)
	if err != nil {
		return err
	}
	if fingerprint != "" {
		if err := client.CheckFingerprint(caCerts, fingerprint); err != nil {
			return err
		}
	}
	key, err := keys.Generate(keyType)
	if err != nil {
		return err
	}
	der, err := csr.Create(csr.Template{RawSubject: name, DNSNames: dnsNames, ChallengePassword: challenge}, key)
	if err != nil {
		return err
	}
	cert, err := c.Enroll(ctx, client.EnrollRequest{CSR: der, Key: key, CACerts: caCerts, Caps: caps})
	if err != nil {
		var fe *client.FailureError
		if errors.As(err, &fe) {
			return fmt.Errorf("enrollment refused by the server: failInfo %s%s", fe.FailInfo, textSuffix(fe.Text))
		}
		return fmt.Errorf("enrollment failed: %w", err)
	}
	if err := keys.WriteKeyFile(keyOut, key); err != nil {
		return err
	}
	if err := keys.WriteCertFile(out, cert); err != nil {
		return err
	}
	var chain []*x509.Certificate
	for _, c := range caCerts {
		if c.IsCA {
			chain = append(chain, c)
		}
	}
	if len(chain) > 0 {
		if err := keys.WriteCertFile(chainOut, chain...); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "issued %s serial %s, valid until %s\ncertificate: %s\nkey:         %s\n",
		cert.Subject, cert.SerialNumber.Text(16), cert.NotAfter.UTC().Format("2006-01-02 15:04:05Z"), out, keyOut)
	if len(chain) > 0 {
		fmt.Fprintf(e.stdout, "CA chain:    %s\n", chainOut)
	}
	return nil
}

func textSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// parseSubject turns "CN=device-1,O=Acme" into a DER Name, keeping the order
// given (most significant last, as RFC 4514 writes it).
func parseSubject(s string) ([]byte, error) {
	name, err := csr.ParseDN(s)
	if err != nil {
		return nil, fmt.Errorf("--subject: %w", err)
	}
	return name, nil
}
