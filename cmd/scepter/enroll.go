package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/agent"
	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

// IsListFlag lets the config file give it as a TOML array.
func (l *stringList) IsListFlag() bool { return true }
func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// clientFlags are shared by enroll and renew.
type clientFlags struct {
	serverURL, fingerprint string
	// cacert holds the only trust anchors for an https server's TLS
	// certificate, as for `scepter est`.
	cacert                string
	out, keyOut, chainOut string
	// keyIn is the key file used as it is (--key), when keyOut is "": the
	// key is not written anywhere else unless --key-out says where.
	keyIn    string
	keyType  string
	allowDES bool
	// noCACertFlag: the command takes no --cacert (getcrl), which the
	// advice for an untrusted https server then leaves out.
	noCACertFlag bool
	// force replaces a --key-out that holds another key.
	force                    bool
	pollInterval, maxWait    time.Duration
	challenge, challengeFile string
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.serverURL, "url", "", "SCEP URL, e.g. http://127.0.0.1:8080/scep or .../scep/PROFILE")
	fingerprintVar(fs, &f.fingerprint, "expected CA fingerprint (`sha256:HEX`); stop if no CA certificate matches; over https the server's TLS certificate must chain to that CA and no other")
	fs.StringVar(&f.cacert, "cacert", "", "https: PEM file of the CA(s) that the server's TLS certificate chains to (instead of the --ca-fingerprint CA or the system roots)")
	fs.StringVar(&f.out, "out", "cert.pem", "where to write the certificate")
	fs.StringVar(&f.keyOut, "key-out", "key.pem", "where to write the private key (mode 0600)")
	fs.StringVar(&f.chainOut, "chain-out", "", "where to write the CA chain (default: beside --out as chain.pem)")
	fs.BoolVar(&f.allowDES, "allow-insecure-des", false, "send single DES to a server that offers neither AES nor DES3")
	fs.DurationVar(&f.pollInterval, "poll-interval", 10*time.Second, "first wait between polls while the request is pending (backs off to 10x)")
	fs.DurationVar(&f.maxWait, "max-wait", 0, "how long to keep polling a pending request (0: return at once)")
	fs.StringVar(&f.challenge, "challenge", "", "challenge password (prefer SCEPTER_CHALLENGE or --challenge-file)")
	fs.StringVar(&f.challengeFile, "challenge-file", "", "file holding the challenge password")
	fs.BoolVar(&f.force, "force", false, "replace a --key-out that holds another private key (default: refuse, it would be lost); enroll: also an --out or chain file holding another enrollment's certificates")
}

func (f *clientFlags) resolve() error {
	if f.serverURL == "" {
		return usageError{"--url is required"}
	}
	if err := checkSCEPURL(f.serverURL); err != nil {
		return err
	}
	if f.cacert != "" && !strings.HasPrefix(strings.ToLower(f.serverURL), "https://") {
		return usageError{"--cacert is the trust for an https:// server's TLS certificate; --url is not https"}
	}
	c, err := secretFlagOrFile("challenge", f.challenge, "challenge-file", f.challengeFile, secretFromFile)
	if err != nil {
		return err
	}
	f.challenge = c
	if !keys.ValidKeyType(f.keyType) {
		return usageError{fmt.Sprintf("--key-type %q: want rsa2048, rsa3072, rsa4096, p256 or p384", f.keyType)}
	}
	// Checked before chain.pem is put beside it: never beside a device.
	if err := checkOutputFile("--out", f.out); err != nil {
		return err
	}
	if f.chainOut == "" {
		f.chainOut = filepath.Join(filepath.Dir(f.out), "chain.pem")
	}
	return distinctOutputs(map[string]string{"--out": f.out, "--key-out": f.keyOut, "--chain-out": f.chainOut})
}

// checkSCEPURL refuses, before anything is sent (exit 2), a --url the
// SCEP client cannot use as given: one whose query holds operation or
// message, which the client sets itself. Its other query parameters are
// kept with every request.
func checkSCEPURL(serverURL string) error {
	if err := (&client.SCEP{URL: serverURL}).CheckURL(); err != nil {
		return usageError{"--url: " + printable(err.Error())}
	}
	return nil
}

// distinctOutputs refuses output files that are one file: one write would
// silently replace the other (the key by the certificate, say); and any
// that is there and is no regular file (checkOutputFile).
func distinctOutputs(flags map[string]string) error {
	names := make([]string, 0, len(flags))
	for name := range flags {
		names = append(names, name)
	}
	sort.Strings(names)
	seen := map[string]string{}
	for _, name := range names {
		if flags[name] == "" {
			continue
		}
		if err := checkOutputFile(name, flags[name]); err != nil {
			return err
		}
		abs, err := filepath.Abs(flags[name])
		if err != nil {
			return fmt.Errorf("%s %q: %w", name, flags[name], err)
		}
		if other, ok := seen[abs]; ok {
			return usageError{fmt.Sprintf("%s and %s name the same file %s; each needs a file of its own", other, name, flags[name])}
		}
		seen[abs] = name
	}
	return nil
}

// connect fetches the server's capabilities and CA certificates, checked
// against the pinned fingerprint when given.
func (f *clientFlags) connect(ctx context.Context, e env) (*client.SCEP, client.Caps, []*x509.Certificate, error) {
	// Over https the fingerprint also pins the server's TLS (as `scepter
	// est` does): a server with a certificate of our own CA is trusted
	// without being in the system roots.
	c := &client.SCEP{URL: f.serverURL, Fingerprint: f.fingerprint, NoCACertFlag: f.noCACertFlag, AllowInsecureDES: f.allowDES, Warnf: func(format string, args ...any) {
		fmt.Fprintf(e.stderr, "warning: %s\n", printable(fmt.Sprintf(format, args...)))
	}}
	if f.cacert != "" {
		certs, err := keys.LoadCertFile(f.cacert)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--cacert: %w", err)
		}
		c.Roots = x509.NewCertPool()
		for _, cert := range certs {
			c.Roots.AddCert(cert)
		}
		c.RootsFile = f.cacert
	}
	caps, err := c.GetCACaps(ctx) // its errors name the operation
	if err != nil {
		return nil, nil, nil, err
	}
	caCerts, err := c.GetCACert(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	// Every caller sends a PKIOperation: a server that offers only single
	// DES, without --allow-insecure-des, is refused here, before a key is
	// kept for a request that is never sent (r134 D1: the refusal came
	// with "no answer came, so the certificate may have been issued").
	if _, _, err := c.Algorithms(caps); err != nil {
		return nil, nil, nil, err
	}
	// Only certificates that chain to the pinned CA (without a pin, to a
	// self-signed one sent along) are encrypted to and believed.
	if caCerts, err = client.TrustedCACerts(caCerts, f.fingerprint, pki.SystemClock{}.Now()); err != nil {
		return nil, nil, nil, client.WithTrustNaming(err, f.trustNaming())
	}
	if f.fingerprint == "" && !strings.HasPrefix(strings.ToLower(f.serverURL), "https://") {
		// Over plain HTTP nothing vouches for the CA that answered: the
		// challenge goes encrypted to whoever is on the path.
		root := caCerts[len(caCerts)-1]
		for _, c := range caCerts {
			if bytes.Equal(c.RawIssuer, c.RawSubject) {
				root = c
			}
		}
		fmt.Fprintf(e.stderr, "warning: no --ca-fingerprint: trusting the CA this server sent (%s) without checking it; pin it with --ca-fingerprint %s\n",
			printable(root.Subject.String()), client.Fingerprint(root))
	}
	return c, caps, caCerts, nil
}

// currentCACerts adds to caCerts, read before the request was sent, the
// CA certificates the server gives now, when none of caCerts issued cert:
// a request held for approval across a CA rollover's switch, approved
// after it, is issued by the new CA, which the first GetCACert did not
// carry. They are checked against the pin as at the start (connect); what
// does not chain to the pinned CA adds nothing, and VerifyIssued still
// requires the certificate to chain to it. A failed fetch is warned about
// and adds nothing: VerifyIssued then says what is missing.
func (f *clientFlags) currentCACerts(ctx context.Context, e env, c *client.SCEP, cert *x509.Certificate, caCerts []*x509.Certificate) []*x509.Certificate {
	if cert == nil || client.IssuerAmong(cert, caCerts) != nil {
		return caCerts
	}
	fresh, err := c.GetCACert(ctx)
	if err == nil {
		fresh, err = client.TrustedCACerts(fresh, f.fingerprint, pki.SystemClock{}.Now())
		err = client.WithTrustNaming(err, f.trustNaming())
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "warning: the certificate's issuer %s is none of the CA certificates read before the request; reading them again: %s\n",
			printable(cert.Issuer.String()), printable(err.Error()))
		return caCerts
	}
	// The ones read first stay: the reply may chain through either.
	return append(fresh[:len(fresh):len(fresh)], caCerts...)
}

// pinnedRootAdvice says, for a certificate that does not chain to the CA
// pinned with --ca-fingerprint when that CA is an issuing CA (no root),
// what to pin instead when the certificate chains to that CA's root
// through another CA the server sends now (the issuing CA after a CA
// rollover's switch: the pinned one is gone from GetCACert for good); ""
// when it does not, or the pin is a root. It trusts nothing: it only
// names what to pin.
func (f *clientFlags) pinnedRootAdvice(ctx context.Context, c *client.SCEP, cert *x509.Certificate, caCerts []*x509.Certificate) string {
	if f.fingerprint == "" || cert == nil {
		return ""
	}
	var pinned, root *x509.Certificate
	for _, ca := range caCerts {
		if client.CheckFingerprint([]*x509.Certificate{ca}, f.fingerprint) == nil {
			pinned = ca
		}
	}
	if pinned == nil || bytes.Equal(pinned.RawIssuer, pinned.RawSubject) {
		return ""
	}
	// The pin kept only what chains to it: the root comes from the
	// server's GetCACert as it is now.
	fresh, err := c.GetCACert(ctx)
	if err != nil {
		return ""
	}
	for _, ca := range slices.Concat(caCerts, fresh) {
		if bytes.Equal(ca.RawIssuer, ca.RawSubject) && pinned.CheckSignatureFrom(ca) == nil {
			root = ca
		}
	}
	if root == nil {
		return ""
	}
	now := pki.SystemClock{}.Now()
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, ca := range fresh {
		inter.AddCert(ca)
	}
	chains, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil || len(chains[0]) < 3 {
		return ""
	}
	issuer := chains[0][1]
	gone := ""
	if !slices.ContainsFunc(fresh, pinned.Equal) {
		gone = ", which the server no longer sends (a CA rollover?)"
	}
	return fmt.Sprintf("the returned certificate was issued by %s (%s), not by the pinned CA %s (%s)%s; "+
		"it chains to the pinned CA's root %s: pin that root instead, --ca-fingerprint %s (or the new CA, --ca-fingerprint %s)",
		printable(issuer.Subject.String()), client.Fingerprint(issuer), printable(pinned.Subject.String()), f.fingerprint, gone,
		printable(root.Subject.String()), client.Fingerprint(root), client.Fingerprint(issuer))
}

// replacedPinAdvice says, for a --ca-fingerprint that none of the
// certificates GetCACert sends has (a *client.PinMismatchError), to a run
// that takes up a key an earlier run kept for its request, what to pin
// instead: the pin let that run in, so the pinned CA is likely an issuing
// CA a CA rollover replaced, gone from GetCACert for good, and running the
// same command again never succeeds. It names the root the server sends
// (and the CA that issues now), to be checked before it is pinned: the
// server's word is all this run has for them. "" for any other error.
func replacedPinAdvice(err error) string {
	var pm *client.PinMismatchError
	if !errors.As(err, &pm) {
		return ""
	}
	var root, issuing *x509.Certificate
	for _, c := range pm.Sent {
		switch {
		case !c.IsCA:
		case bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil:
			if root == nil {
				root = c
			}
		case issuing == nil:
			issuing = c
		}
	}
	if root != nil && issuing != nil && issuing.CheckSignatureFrom(root) != nil {
		root = nil // not the root of the CA that issues
	}
	instead := "pin your CA's root instead (the server does not send it)"
	if root != nil {
		instead = fmt.Sprintf("pin the root instead, --ca-fingerprint %s (%s: check that it is your CA's)", client.Fingerprint(root), printable(root.Subject.String()))
	}
	if issuing != nil {
		instead += fmt.Sprintf(", or the CA that issues now, --ca-fingerprint %s (%s)", client.Fingerprint(issuing), printable(issuing.Subject.String()))
	}
	return "an earlier run of this request kept its key: if it pinned the same CA, the server no longer sends that CA (a CA rollover replaced it?), and no run pinning it can succeed; " + instead
}

// newKey makes a client's new key of keyType with e.generateKey, or
// keys.Generate when that is nil (as it is outside tests).
func (e env) newKey(keyType string) (crypto.Signer, error) {
	if e.generateKey != nil {
		return e.generateKey(keyType)
	}
	return keys.Generate(keyType)
}

// finish writes the key, certificate and CA chain, and reports.
func (f *clientFlags) finish(e env, key crypto.Signer, cert *x509.Certificate, caCerts []*x509.Certificate, err error) error {
	if err != nil {
		var fe *client.FailureError
		var pe *client.PendingError
		switch {
		case errors.As(err, &fe):
			return fmt.Errorf("enrollment refused by the server: failInfo %s%s", fe.FailInfo, textSuffix(fe.Text))
		case errors.As(err, &pe):
			return err // pendingHint said what to do
		}
		return fmt.Errorf("enrollment failed: %w", err)
	}
	chain, err := client.VerifyIssued(cert, key.Public(), caCerts, f.fingerprint, pki.SystemClock{}.Now(), func(format string, args ...any) {
		fmt.Fprintf(e.stderr, "warning: "+format+"\n", args...)
	})
	if err != nil {
		return fmt.Errorf("refusing what the server returned: %w", err)
	}
	keyAt := f.keyIn + " (kept)"
	if f.keyOut != "" {
		keyAt = f.keyOut
	}
	if err := writeEnrollment(f.out, f.keyOut, f.chainOut, cert, key, chain); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "issued %s serial %s, valid until %s\ncertificate: %s\nkey:         %s\n",
		printable(cert.Subject.String()), pki.SerialText(cert.SerialNumber), cert.NotAfter.UTC().Format("2006-01-02 15:04:05Z"), f.out, keyAt)
	if len(chain) > 0 {
		fmt.Fprintf(e.stdout, "CA chain:    %s\n", f.chainOut)
	}
	return nil
}

func cmdEnroll(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "enroll", "enroll --url URL --challenge X --subject 'CN=device-1,O=Acme' --out cert.pem --key-out key.pem [flags]")
	var f clientFlags
	var subject string
	var dnsNames stringList
	var keyFile string
	f.register(fs)
	fs.StringVar(&subject, "subject", "", "certificate subject, e.g. 'CN=device-1,O=Acme'")
	fs.Var(&dnsNames, "dns", "DNS name for the subject alternative name (repeatable, or comma-separated)")
	fs.StringVar(&f.keyType, "key-type", "rsa2048", "key type: rsa2048, rsa3072, rsa4096, p256, p384 (EC keys receive the reply in a password-based envelope)")
	fs.StringVar(&keyFile, "key", "", "use this existing private key instead of making one (e.g. to collect a pending request)")
	if err := parseFlags(fs, e, args, 0, nil); err != nil {
		return err
	}
	if keyFile != "" && !flagGiven(fs, "key-out") {
		// The key is in keyFile already: a default --key-out would
		// overwrite whatever ./key.pem holds with a copy of it.
		f.keyOut, f.keyIn = "", keyFile
	}
	if err := f.resolve(); err != nil {
		return err
	}
	if subject == "" && len(dnsNames) == 0 {
		return usageError{"--subject (or at least one --dns) is required"}
	}
	name, err := csr.ParseDN(subject)
	if err != nil {
		return usageError{"--subject: " + err.Error()}
	}
	tmpl := csr.Template{RawSubject: name, DNSNames: dnsNames, ChallengePassword: f.challenge}
	req := enrollmentRequest("scep enroll", f.serverURL, tmpl)
	var key crypto.Signer
	var held *heldKey
	if keyFile != "" {
		key, err = keys.LoadKeyFile(keyFile)
	} else if held, err = findHeldKey(f.keyOut, f.out, nil, req); held != nil {
		key = held.key
		announceHeldKey(e, held)
	} else if err == nil {
		key, err = e.newKey(f.keyType)
	}
	if err != nil {
		return err
	}
	if err := checkKeyOut(f.keyOut, f.force, key.Public(), nil, "--key"); err != nil {
		return err
	}
	if err := checkCertOut(f.out, f.force, key.Public()); err != nil {
		return err
	}
	if !isRSAKey(key) && f.challenge == "" {
		return usageError{"an EC key needs --challenge: the server encrypts the certificate to it"}
	}
	c, caps, caCerts, err := f.connect(ctx, e)
	if err != nil {
		if advice := replacedPinAdvice(err); advice != "" && held != nil {
			// Run again as it is, it would fail alike: the pin is what
			// has to change.
			return fmt.Errorf("%w; %s; %s is still %s: keep it, and the command run with that --ca-fingerprint takes it up", err, advice, held.path, held.whose())
		}
		// Nothing was asked with the held key: it stays for the next run.
		return heldKeyNoteFor(err, held, notAnswered)
	}
	if err := checkChainOut(f.chainOut, f.force, caCerts); err != nil {
		return heldKeyNoteFor(err, held, notAnswered)
	}
	der, err := csr.Create(tmpl, key)
	if err != nil {
		return err
	}
	kept := held
	if keyFile == "" && held == nil && f.keyOut != "" {
		// Kept before the server is asked, as `est enroll` and `renew
		// --rekey` do: if the answer is lost after the server issued
		// (and used up a one-time challenge), the same command asks again
		// with this key, in the same transaction (its ID comes from the
		// key), and is given the certificate issued for it; a new key
		// would be refused for the used challenge.
		at, err := saveHeldKey(f.keyOut, key, req, holdNever)
		if err != nil {
			return fmt.Errorf("keeping the key before asking for its certificate: %w", err)
		}
		kept = &heldKey{key: key, path: at, hold: holdNever}
	}
	cert, err := c.Enroll(ctx, client.EnrollRequest{CSR: der, Key: key, CACerts: caCerts, Caps: caps, Challenge: f.challenge,
		PollInterval: f.pollInterval, MaxWait: f.maxWait, Held: markHeldWhenHeld(e, kept, req)})
	if err = pendingHint(err, key, keyFile == "", f.keyOut, kept, req, f.again(), "--key"); err != nil {
		var fe *client.FailureError
		return enrollKeyNote(f.finish(e, key, cert, caCerts, err), kept, held != nil, false, errors.As(err, &fe), heldKeyFailure(err))
	}
	// The names may be the profile's (a fixed subject), or a server may
	// drop what it does not take (micromdm and step-ca drop a UID): only
	// reported, as `est enroll` does.
	nameChange := client.NameChange
	if held != nil || keyFile != "" {
		// Collected for a request held for approval: issued with the held
		// request's names, which the server took this request's for.
		nameChange = client.HeldNameChange
	}
	if change := nameChange(cert, tmpl); change != "" {
		fmt.Fprintf(e.stderr, "warning: the server issued other names than the request asked for: %s\n", change)
	}
	caCerts = f.currentCACerts(ctx, e, c, cert, caCerts)
	if err := f.finish(e, key, cert, caCerts, nil); err != nil {
		if advice := f.pinnedRootAdvice(ctx, c, cert, caCerts); advice != "" && kept != nil {
			// Run again as it is, it would fail alike: the pin is what
			// has to change.
			return fmt.Errorf("refusing what the server returned: %s; the key made for this request stays in %s, and the command run with that --ca-fingerprint asks with it", advice, kept.path)
		}
		return enrollKeyNote(err, kept, held != nil, true, false, notAnswered)
	}
	forgetHeldKey(f.keyOut, kept)
	if keyFile != "" {
		forgetHeldKey(keyFile) // the key --key named is an issued one now
	}
	return nil
}

// checkCertOut refuses, before anything is asked, an --out that holds
// something other than a certificate for key (an earlier enrollment's
// certificate, say), as checkKeyOut refuses a --key-out holding another
// key: writing this enrollment's certificate would replace it. force
// allows it.
func checkCertOut(out string, force bool, key crypto.PublicKey) error {
	data, err := os.ReadFile(out)
	if force || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--out %s: %w", out, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	const advice = "name another --out, move it away, or pass --force to replace it"
	certs, err := keys.ParseCertsPEM(data)
	if err != nil || len(certs) == 0 {
		return fmt.Errorf("--out %s holds something that is not a certificate for this request's key, which writing the new certificate would replace; %s", out, advice)
	}
	if !pki.SamePublicKey(certs[0].PublicKey, key) {
		return fmt.Errorf("--out %s already holds a certificate for another key (%s, an earlier enrollment's?), which writing the new certificate would replace; %s",
			out, printable(certs[0].Subject.String()), advice)
	}
	return nil
}

// checkChainOut refuses, before anything is asked, a chain file that
// holds anything but CA certificates the server gives now (an earlier
// enrollment's chain through another CA, or another file), as
// checkKeyOut refuses a --key-out holding another key. A chain of the
// same CA certificates (an earlier enrollment from this CA into the same
// directory) is replaced by one with the same certificates, which loses
// nothing. force allows it.
func checkChainOut(chainOut string, force bool, caCerts []*x509.Certificate) error {
	data, err := os.ReadFile(chainOut)
	if force || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--chain-out %s: %w", chainOut, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	certs, err := keys.ParseCertsPEM(data)
	if err == nil && len(certs) > 0 && !slices.ContainsFunc(certs, func(c *x509.Certificate) bool { return !slices.ContainsFunc(caCerts, c.Equal) }) {
		return nil
	}
	return fmt.Errorf("--chain-out %s already holds other certificates than this server's CA certificates (an earlier enrollment's chain?), which writing this enrollment's chain would replace; "+
		"name another --chain-out, move it away, or pass --force to replace it", chainOut)
}

// again is how to run a request held for approval again: SCEP asks with
// the same challenge.
func (f *clientFlags) again() string {
	if f.challenge != "" {
		return "run the same command again, with the same challenge"
	}
	return "run the same command again"
}

// cmdRenew renews a certificate with the certificate itself as the
// authentication (RenewalReq when the server advertises Renewal).
func cmdRenew(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "renew", "renew --url URL --cert cert.pem --key key.pem [--rekey] --out new.pem --key-out new-key.pem")
	var f clientFlags
	var certFile, keyFile string
	var rekey, pkcsReq bool
	f.register(fs)
	fs.StringVar(&certFile, "cert", "cert.pem", "the certificate to renew")
	fs.StringVar(&keyFile, "key", "key.pem", "its private key")
	fs.BoolVar(&rekey, "rekey", false, "make a new key (default: keep the key)")
	fs.StringVar(&f.keyType, "key-type", "", "key type of a new key with --rekey (default: the same type as now)")
	fs.BoolVar(&pkcsReq, "pkcsreq", false, "send a PKCSReq signed by the certificate instead of a RenewalReq")
	if err := parseFlags(fs, e, args, 0, nil); err != nil {
		return err
	}
	certs, err := keys.LoadCertFile(certFile)
	if err != nil {
		return err
	}
	oldKey, err := keys.LoadKeyFile(keyFile)
	if err != nil {
		return err
	}
	old := certs[0]
	if f.keyType == "" {
		f.keyType = keys.KeyTypeOf(old.PublicKey)
	}
	if !rekey && !flagGiven(fs, "key-out") {
		f.keyOut, f.keyIn = "", keyFile // the key stays where it is
	}
	if err := f.resolve(); err != nil {
		return err
	}
	key := oldKey
	req := renewalRequest("scep renew", old)
	var held, kept *heldKey
	if rekey {
		if held, err = findHeldKey(f.keyOut, f.out, old.PublicKey, req); err != nil {
			return err
		}
		if held != nil {
			key = held.key
			announceHeldKey(e, held)
			// Kept as a new key is: a refusal removes it.
			kept = held
		} else if key, err = e.newKey(f.keyType); err != nil {
			return err
		}
	}
	if err := checkKeyOut(f.keyOut, f.force, key.Public(), old.PublicKey, ""); err != nil {
		return err
	}
	c, caps, caCerts, err := f.connect(ctx, e)
	if err != nil {
		// Nothing carried a new key yet: none was kept (as in enroll).
		return keptKeyNote(err, kept, notAnswered)
	}
	if rekey && held == nil {
		// Kept before the server is asked, as the agent does: if the
		// answer is lost, running the command again asks with the same
		// key and is given the certificate already issued for it, even
		// when that renewal revoked the old one (revoke_superseded).
		// A new key each time would leave only a revoked certificate.
		at, err := saveHeldKey(f.keyOut, key, req, holdNever)
		if err != nil {
			return fmt.Errorf("keeping the new key before asking for its certificate: %w", err)
		}
		kept = &heldKey{key: key, path: at, hold: holdNever}
	}
	// The renewed certificate keeps every name of the old one (shared with
	// `scepter agent`). An EC key given no challenge gets a random one for
	// its reply's envelope; f.challenge stays empty, so that a held
	// renewal's hint asks for none.
	cert, err := agent.SCEPRenew(ctx, c, agent.SCEPRenewal{Old: old, OldKey: oldKey, Key: key, Caps: caps, CACerts: caCerts,
		Challenge: f.challenge, PKCSReq: pkcsReq, PollInterval: f.pollInterval, MaxWait: f.maxWait, Held: markHeldWhenHeld(e, kept, req)})
	if err = pendingHint(err, key, rekey, f.keyOut, held, req, f.again(), ""); err != nil {
		return keptKeyNote(f.finish(e, key, cert, caCerts, err), kept, scepKeptKeyFailure(err))
	}
	// A renewal asked for again after a CA rollover (its answer was lost
	// before the switch) is answered with the certificate the previous
	// issuing CA issued, which GetCACert no longer carries: its issuer
	// comes from the certificate's caIssuers URL, and counts only if it
	// chains to the pinned root (as in the agent).
	caCerts = client.WithIssuer(ctx, cert, caCerts, f.fingerprint)
	if err := f.finish(e, key, cert, caCerts, nil); err != nil {
		return keptKeyNote(err, kept, notAnswered)
	}
	forgetHeldKey(f.keyOut, kept)
	return nil
}

// keptKeyNote completes the error of a renewal whose new key was kept,
// before the server was asked or by an earlier run, by what failed
// (heldKeyFailure, or notAnswered where the server did not refuse the
// request). Only a refusal of the request makes the key useless: it is
// removed, and the next run makes a new one. After a refused challenge or
// password the key is kept as after any other failure (an answer lost, a
// server down): an earlier run's re-key may have been approved, or issued
// with its answer lost, and its certificate is given only for that key.
func keptKeyNote(err error, kept *heldKey, failure heldFailure) error {
	var pe *client.PendingError
	if err == nil || kept == nil || errors.As(err, &pe) {
		return err // pendingHint said where the key is
	}
	switch failure {
	case refusedForGood, refusedOtherwise, expiredUndecided:
		dropKeptKey(kept)
		return fmt.Errorf("%w; a refusal is final, so the new key kept for it in %s is removed: the next run makes a new one", err, kept.path)
	case renewedCertRefused:
		// The marker binds the key to that certificate: no run can use it.
		dropKeptKey(kept)
		return fmt.Errorf("%w; the certificate being renewed was refused, not a password, and no run renews it: the new key kept for its renewal in %s is removed (the next run makes a new one)", err, kept.path)
	case challengeRefused, credentialsRefused:
		markSecretRefused(kept)
		r := keptKeyRemedies[failure]
		return fmt.Errorf("%w; %s: the new key stays in %s (a re-key approved or issued for it is given only for it); %s, which asks with it", err, r.refused, kept.path, r.again)
	case otherAuthScheme:
		return fmt.Errorf("%w; the new key stays in %s (a re-key approved or issued for it is given only for it); %s, which asks with it", err, kept.path, keptKeyRemedies[failure].again)
	}
	return fmt.Errorf("%w; the new key is kept in %s: run the same command again to ask with it (the server answers a renewal it has issued already with the same certificate)", err, kept.path)
}

// scepKeptKeyFailure is what a SCEP renewal's failure means for its kept
// key: only the server's answer (a FailureError) refuses the request, as
// heldKeyFailure reads it; anything else (no answer, an HTTP error from
// whatever answered) leaves it to be asked again.
func scepKeptKeyFailure(err error) heldFailure {
	var fe *client.FailureError
	if !errors.As(err, &fe) {
		return notAnswered
	}
	return heldKeyFailure(err)
}

func isRSAKey(k crypto.Signer) bool {
	return strings.HasPrefix(keys.KeyTypeOf(k.Public()), "rsa")
}

func textSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + client.Printable(s)
}

// flagGiven reports whether the flag name has a value other than its
// default, from the command line, the environment or the config file.
func flagGiven(fs *flag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Value.String() != f.DefValue
}

// trustNaming is how the command names its trust flags in advice: getcrl
// takes no --cacert.
func (f *clientFlags) trustNaming() client.TrustNaming {
	if f.noCACertFlag {
		return client.NamingNoCACert
	}
	return client.NamingFlags
}
