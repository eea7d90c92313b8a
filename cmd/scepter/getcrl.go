package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/keys"
)

// cmdGetCRL fetches a CA's CRL over SCEP (GetCRL), for devices and scripts
// that cannot reach the CRL distribution point.
func cmdGetCRL(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "getcrl", "getcrl --url URL --cert cert.pem [--key key.pem] [--out crl.der] [--pem]")
	var url, fingerprint, certFile, keyFile, out string
	var asPEM, allowDES bool
	fs.StringVar(&url, "url", "", "SCEP URL, e.g. http://127.0.0.1:8080/scep")
	fingerprintVar(fs, &fingerprint, "expected CA fingerprint (`sha256:HEX`); stop if no CA certificate matches")
	fs.StringVar(&certFile, "cert", "cert.pem", "a certificate issued by the CA whose CRL is wanted")
	fs.StringVar(&keyFile, "key", "", "its private key, to sign the request with the certificate (RSA only; default: a throwaway signer)")
	fs.StringVar(&out, "out", "", "where to write the CRL (default: standard output)")
	fs.BoolVar(&asPEM, "pem", false, "write PEM instead of DER")
	fs.BoolVar(&allowDES, "allow-insecure-des", false, "send single DES to a server that offers neither AES nor DES3")
	if err := parseFlags(fs, e, args, 0, nil); err != nil {
		return err
	}
	if url == "" {
		return usageError{"--url is required"}
	}
	if err := checkSCEPURL(url); err != nil {
		return err
	}
	if out != "" {
		if err := checkOutputFile("--out", out); err != nil {
			return err
		}
	}
	certs, err := keys.LoadCertFile(certFile)
	if err != nil {
		return fmt.Errorf("--cert: %w", err)
	}
	req := client.CRLRequest{Cert: certs[0]}
	if keyFile != "" {
		key, err := keys.LoadKeyFile(keyFile)
		if err != nil {
			return err
		}
		if !isRSAKey(key) {
			return usageError{"--key must be an RSA key (the reply is encrypted to it); leave it out to use a throwaway signer"}
		}
		req.SignerCert, req.SignerKey = certs[0], key
	}
	f := clientFlags{serverURL: url, fingerprint: fingerprint, allowDES: allowDES, noCACertFlag: true}
	c, caps, caCerts, err := f.connect(ctx, e)
	if err != nil {
		return err
	}
	req.CACerts, req.Caps, req.Fingerprint = caCerts, caps, fingerprint
	der, err := c.GetCRL(ctx, req)
	if err != nil {
		var fe *client.FailureError
		if errors.As(err, &fe) {
			return fmt.Errorf("GetCRL: %w", err)
		}
		return err
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return err
	}
	data := der
	if asPEM {
		data = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	}
	if out == "" {
		_, err = e.stdout.Write(data)
		return err
	}
	if err := keys.WriteFileAtomic(out, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "CRL %s of %s: %d revoked, next update %s; written to %s\n", list.Number, printable(list.Issuer.String()),
		len(list.RevokedCertificateEntries), list.NextUpdate.UTC().Format("2006-01-02T15:04:05Z"), out)
	return nil
}
