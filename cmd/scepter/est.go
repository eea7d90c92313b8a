package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scepter/scepter/internal/agent"
	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/config"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

const estUsage = `usage: scepter est cacerts|enroll|reenroll|serverkeygen --url https://HOST:PORT[/LABEL] [flags]
       scepter est user add NAME --password-file F [--profile P] | est user list [--json] | est user remove NAME`

// cmdEST is the EST client and the EST user administration.
func cmdEST(ctx context.Context, e env, args []string) error {
	sub, err := subcommand(e, args, estUsage)
	if err != nil {
		return err
	}
	switch sub {
	case "cacerts":
		return estCACerts(ctx, e, args[1:])
	case "enroll", "reenroll", "serverkeygen":
		return estEnroll(ctx, e, sub, args[1:])
	case "user":
		return estUser(ctx, e, args[1:])
	}
	return usageError{estUsage}
}

// estFlags are the EST client's connection flags.
type estFlags struct {
	url, cacert, fingerprint string
	user, passwordFile       string
	certFile, keyFile        string
	tlsMin, tlsMax           string
	out, keyOut, chainOut    string
}

func (f *estFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "url", "", "EST server: https://HOST:PORT, optionally /LABEL (the profile)")
	fs.StringVar(&f.cacert, "cacert", "", "PEM file of the CA(s) that the server's TLS certificate chains to")
	fingerprintVar(fs, &f.fingerprint, "instead of --cacert: trust the CA from /cacerts whose SHA-256 is this (`sha256:HEX`)")
	fs.StringVar(&f.user, "user", "", "HTTP Basic user name (an EST user, or anything with a one-time challenge as password)")
	fs.StringVar(&f.passwordFile, "password-file", "", "file whose first line is the HTTP Basic password (or set SCEPTER_EST_PASSWORD)")
	fs.StringVar(&f.certFile, "cert", "", "TLS client certificate (the one to renew, or a manufacturer certificate)")
	fs.StringVar(&f.keyFile, "key", "", "its private key")
	fs.StringVar(&f.tlsMin, "tls-min-version", "1.2", "lowest TLS version: 1.2 or 1.3")
	fs.StringVar(&f.tlsMax, "tls-max-version", "1.3", "highest TLS version: 1.2 or 1.3")
	fs.StringVar(&f.out, "out", "cert.pem", "where to write the certificate (cacerts: the CA certificates)")
	fs.StringVar(&f.keyOut, "key-out", "key.pem", "where to write the private key (mode 0600)")
	fs.StringVar(&f.chainOut, "chain-out", "", "where to write the certificate's CA chain, its issuing CA up to the root (default: beside --out as chain.pem)")
}

// client builds the EST client from the flags.
func (f *estFlags) client(e env) (*client.EST, error) {
	if f.url == "" {
		return nil, usageError{"--url is required"}
	}
	if f.cacert != "" && f.fingerprint != "" {
		return nil, usageError{"--cacert and --ca-fingerprint exclude each other"}
	}
	c := &client.EST{URL: f.url, Fingerprint: f.fingerprint, User: f.user,
		Warnf: func(format string, args ...any) {
			fmt.Fprintf(e.stderr, "warning: %s\n", printable(fmt.Sprintf(format, args...)))
		}}
	if err := c.CheckURL(); err != nil {
		return nil, usageError{"--url: " + printable(err.Error())}
	}
	var err error
	if c.MinVersion, err = tlsVersion(f.tlsMin); err != nil {
		return nil, usageError{"--tls-min-version: " + err.Error()}
	}
	if c.MaxVersion, err = tlsVersion(f.tlsMax); err != nil {
		return nil, usageError{"--tls-max-version: " + err.Error()}
	}
	if f.cacert != "" {
		certs, err := keys.LoadCertFile(f.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		c.Roots = x509.NewCertPool()
		for _, cert := range certs {
			c.Roots.AddCert(cert)
		}
		c.RootsFile = f.cacert
	}
	if err := refuseEnvAndFile(e, "SCEPTER_EST_PASSWORD", "password-file", f.passwordFile); err != nil {
		return nil, err
	}
	if f.passwordFile != "" {
		if c.Password, err = passwordFromFile("--password-file", f.passwordFile); err != nil {
			return nil, err
		}
	} else if v, ok := e.lookupEnv("SCEPTER_EST_PASSWORD"); ok {
		c.Password = v
	}
	if c.Password != "" && c.User == "" {
		c.User = "scepter"
	}
	if (f.certFile == "") != (f.keyFile == "") {
		return nil, usageError{"--cert and --key go together"}
	}
	if f.certFile != "" {
		pair, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		c.Certificate = &pair
	}
	return c, nil
}

// distinct puts the chain beside --out unless --chain-out says where, and
// refuses enroll's output files that are one file or no regular file.
func (f *estFlags) distinct() error {
	// Checked before chain.pem is put beside it: never beside a device.
	if err := checkOutputFile("--out", f.out); err != nil {
		return err
	}
	if f.chainOut == "" {
		f.chainOut = filepath.Join(filepath.Dir(f.out), "chain.pem")
	}
	return distinctOutputs(map[string]string{"--out": f.out, "--key-out": f.keyOut, "--chain-out": f.chainOut})
}

func tlsVersion(s string) (uint16, error) {
	switch s {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q: want 1.2 or 1.3", s)
}

func estCACerts(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "est cacerts", "est cacerts --url URL [--cacert FILE | --ca-fingerprint sha256:HEX] [--out cacerts.pem]")
	var f estFlags
	f.register(fs)
	fs.Lookup("out").DefValue, f.out = "cacerts.pem", "cacerts.pem"
	if err := parseFlags(fs, e, args, 0, nil); err != nil {
		return err
	}
	c, err := f.client(e)
	if err != nil {
		return err
	}
	if err := checkOutputFile("--out", f.out); err != nil {
		return err
	}
	sent, err := c.CACerts(ctx)
	if err != nil {
		return err
	}
	// The file is a trust file (--cacert): a certificate that is no CA
	// (a server's own, sent along) would be one more thing trusted, so it
	// is left out, and named.
	var certs []*x509.Certificate
	for _, cert := range sent {
		if cert.BasicConstraintsValid && cert.IsCA {
			certs = append(certs, cert)
			continue
		}
		fmt.Fprintf(e.stderr, "warning: left out %s  %s: /cacerts sent it, but it is no CA certificate (its basicConstraints do not say CA:TRUE)\n",
			client.Fingerprint(cert), printable(cert.Subject.String()))
	}
	if len(certs) == 0 {
		return fmt.Errorf("none of the %d certificate(s) /cacerts sent is a CA certificate (basicConstraints CA:TRUE); nothing written to %s", len(sent), f.out)
	}
	if err := keys.WriteCertFile(f.out, certs...); err != nil {
		return err
	}
	for _, cert := range certs {
		fmt.Fprintf(e.stdout, "%s  %s\n", client.Fingerprint(cert), printable(cert.Subject.String()))
	}
	fmt.Fprintf(e.stdout, "%d CA certificate(s) written to %s\n", len(certs), f.out)
	return nil
}

func estEnroll(ctx context.Context, e env, op string, args []string) error {
	synopsis := map[string]string{
		"enroll":       "est enroll --url URL (--user U --password-file F | --cert C --key K) --subject 'CN=dev' [--dns NAME] [--key-type p256] [flags]",
		"reenroll":     "est reenroll --url URL --cert cert.pem --key key.pem [--rekey] [flags]",
		"serverkeygen": "est serverkeygen --url URL (--user U --password-file F | --cert C --key K) --subject 'CN=dev' [--encrypt] [flags]",
	}[op]
	fs := newFlagSet(e, "est "+op, synopsis)
	var f estFlags
	var subject, keyType, binding, csrKeyFile string
	var dnsNames, ipAddrs, emails, uris stringList
	var rekey, encrypt, force bool
	var pollInterval, maxWait time.Duration
	f.register(fs)
	fs.StringVar(&subject, "subject", "", "certificate subject, e.g. 'CN=device-1,O=Acme' (not for reenroll, which keeps that of --cert)")
	fs.Var(&dnsNames, "dns", "DNS name SAN (repeatable, or comma-separated; not for reenroll, which keeps the SANs of --cert)")
	fs.Var(&ipAddrs, "ip", "IP address SAN (repeatable; not for reenroll)")
	fs.Var(&emails, "email", "email SAN (repeatable; not for reenroll)")
	fs.Var(&uris, "uri", "URI SAN (repeatable; not for reenroll)")
	fs.StringVar(&keyType, "key-type", "p256", "key type: p256, p384, rsa2048, rsa3072, rsa4096 (reenroll: only with --rekey, default the old key's type)")
	fs.StringVar(&binding, "channel-binding", "auto", "put the TLS channel binding in the CSR: auto (when csrattrs asks), always, never")
	fs.StringVar(&csrKeyFile, "csr-key", "", "enroll: use this existing private key (to collect a request held for approval)")
	fs.BoolVar(&rekey, "rekey", false, "reenroll: make a new key (default: keep the key)")
	fs.BoolVar(&force, "force", false, "replace a --key-out that holds another private key (default: refuse, it would be lost)")
	fs.BoolVar(&encrypt, "encrypt", false, "serverkeygen: have the key encrypted to the request's own key besides TLS; that key, and the one the server makes, are then RSA (rsa2048 unless --key-type says)")
	fs.DurationVar(&pollInterval, "poll-interval", 10*time.Second, "least wait between requests while the request awaits approval (the server's Retry-After counts when longer)")
	fs.DurationVar(&maxWait, "max-wait", 0, "how long to keep asking while the request awaits approval (0: return at once)")
	if err := parseFlags(fs, e, args, 0, nil); err != nil {
		return err
	}
	if binding != "auto" && binding != "always" && binding != "never" {
		return usageError{"--channel-binding: want auto, always or never"}
	}
	// given: on the command line; fromEnv: by its variable alone, which
	// counts as the flag but for what reenroll refuses.
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	fromEnv := func(name string) bool {
		if given[name] || e.lookupEnv == nil {
			return false
		}
		_, ok := e.lookupEnv(config.EnvName(name))
		return ok
	}
	if op == "reenroll" {
		if err := refuseReenrollFlags(given, rekey); err != nil {
			return err
		}
		warnReenrollEnv(e, fromEnv, rekey)
	}
	if encrypt && op != "serverkeygen" {
		// It would only add an attribute that no server reads to the CSR.
		// Its variable, which an environment for serverkeygen scripts may
		// hold, is only warned about, as reenroll's are.
		if !fromEnv("encrypt") {
			return usageError{"--encrypt is for serverkeygen: it has the key the server makes encrypted to the request's key; est " + op + " makes its key here and sends none"}
		}
		fmt.Fprintf(e.stderr, "warning: %s is set, and est %s ignores it: it is for serverkeygen, and est %s makes its key here\n", config.EnvName("encrypt"), op, op)
		encrypt = false
	}
	c, err := f.client(e)
	if err != nil {
		return err
	}
	if c.User != "" && c.Password == "" {
		// An empty password is only refused, and each refusal counts
		// toward that user's lockout on the server.
		return usageError{fmt.Sprintf("--user %s has no password: give it with --password-file FILE (its first line) or SCEPTER_EST_PASSWORD", printable(c.User))}
	}
	// A key used as it is (reenroll's --key without --rekey, enroll's
	// --csr-key) stays where it is: a default --key-out would only put a
	// second copy of the private key beside it. One named is written.
	keyIn := ""
	if !given["key-out"] && !fromEnv("key-out") {
		switch {
		case op == "reenroll" && !rekey:
			f.keyOut, keyIn = "", f.keyFile
		case op == "enroll" && csrKeyFile != "":
			f.keyOut, keyIn = "", csrKeyFile
		}
	}
	if err := f.distinct(); err != nil {
		return err
	}
	keyTypeSet := given["key-type"] || fromEnv("key-type")
	tmpl, plan, err := estRequestTemplate(op, &f, subject, keyType, keyTypeSet, rekey, encrypt, names{dnsNames, ipAddrs, emails, uris})
	if err != nil {
		return err
	}
	if csrKeyFile != "" && op != "enroll" {
		return usageError{"--csr-key is for enroll"}
	}
	key := plan.key
	request := enrollmentRequest("est "+op, f.url, tmpl)
	if plan.renewed != nil {
		request = renewalRequest("est "+op, plan.renewed)
	}
	// A key kept for this request is found before the server is asked
	// anything, so that a failure from here on says it is kept.
	var held *heldKey
	if key == nil && csrKeyFile == "" {
		if held, err = findHeldKey(f.keyOut, f.out, plan.current, request); err != nil {
			return err
		}
		if held != nil {
			key = held.key
			announceHeldKey(e, held)
		}
	}
	// With --cacert, the CA /cacerts names must chain to it before
	// anything else is sent: its certificate would be issued, then
	// refused (CheckIssued), the credentials spent for nothing. Nothing is
	// written, and a kept key stays.
	if err := c.CheckCACerts(ctx); err != nil {
		if op == "reenroll" && plan.current != nil {
			return keptKeyNote(err, held, notAnswered)
		}
		return heldKeyNoteFor(err, held, notAnswered)
	}
	// CSR attributes are advice (RFC 7030 §4.5): a server that refuses
	// them is warned about, and the request goes without; one that cannot
	// be reached is not asked again.
	var attrs []est.CSRAttr
	if binding == "auto" || op != "serverkeygen" {
		if attrs, err = c.AdvisoryCSRAttrs(ctx); err != nil {
			// Nothing was asked with the kept key: it stays for the next run.
			if op == "reenroll" && plan.current != nil {
				return keptKeyNote(err, held, notAnswered)
			}
			return heldKeyNoteFor(err, held, notAnswered)
		}
	}
	// The server's key types count for the key of the certificate; a
	// serverkeygen request's key only receives the server's key.
	advice := client.KeyAdvice{}
	if op != "serverkeygen" {
		advice = client.KeyAdviceOf(attrs)
	}
	switch {
	case csrKeyFile != "":
		if key, err = keys.LoadKeyFile(csrKeyFile); err != nil {
			return err
		}
	case key == nil:
		kt := plan.keyType
		if chosen := advice.Choose(); !plan.keyTypeGiven && !advice.Accepts(kt) && chosen != "" {
			fmt.Fprintf(e.stderr, "the server's /csrattrs ask for these key types: %s; making a %s key\n", advice, chosen)
			kt = chosen
		}
		if key, err = e.newKey(kt); err != nil {
			return err
		}
	}
	keyFlag := "" // reenroll takes no key of a request made before
	if op == "enroll" {
		keyFlag = "--csr-key"
	}
	if err := checkKeyOut(f.keyOut, force, key.Public(), plan.current, keyFlag); err != nil {
		return err
	}
	if kt := keys.KeyTypeOf(key.Public()); !advice.Accepts(kt) {
		fmt.Fprintf(e.stderr, "warning: the server's /csrattrs ask for these key types: %s; this request's key is %s, which the server may refuse\n", advice, kt)
	}
	if encrypt {
		id, _ := asn1.Marshal(keyIdentifier(key.Public()))
		tmpl.Attributes = append(tmpl.Attributes, csr.Attribute{Type: est.OIDAsymmetricDecryptKeyIdentifier, Values: [][]byte{id}})
	}
	withBinding := binding == "always" || binding == "auto" && est.Has(attrs, est.OIDChallengePassword)
	req := client.ESTRequest{Op: map[string]string{"enroll": est.OpSimpleEnroll, "reenroll": est.OpSimpleReenroll, "serverkeygen": est.OpServerKeyGen}[op],
		PollInterval: pollInterval, MaxWait: maxWait,
		MakeCSR: func(cb []byte) ([]byte, error) {
			t := tmpl
			if withBinding {
				if cb == nil {
					return nil, errors.New("the server asks for channel binding, and this TLS connection has none")
				}
				t.ChallengePassword = est.ChannelBindingPassword(cb)
			}
			return csr.Create(t, key)
		}}
	if encrypt {
		dec, ok := key.(crypto.Decrypter)
		if !ok {
			return usageError{"--encrypt needs an RSA key for the request (--key-type rsa2048)"}
		}
		req.DecryptKey, req.KeyID = dec, keyIdentifier(key.Public())
	}
	saved := held
	var kept *heldKey
	if op == "reenroll" && plan.current != nil {
		// A new key (--rekey) is kept before the server is asked, as
		// `scepter renew --rekey` and the agent do: if the answer is lost,
		// the same command asks again with it and is given the
		// certificate already issued for it, even when that renewal
		// revoked the old one (revoke_superseded). A new key each time
		// would leave only a revoked certificate. One an earlier run kept
		// is kept alike: a refusal removes it.
		kept = held
		if held == nil {
			at, err := saveHeldKey(f.keyOut, key, request, holdNever)
			if err != nil {
				return fmt.Errorf("keeping the new key before asking for its certificate: %w", err)
			}
			kept = &heldKey{key: key, path: at, hold: holdNever}
		}
		saved = kept
	}
	// A failure after the server answered leaves a kept key for the next
	// run, which asks with it again.
	answeredNote := func(err error) error { return keptKeyNote(err, kept, notAnswered) }
	if op == "enroll" && csrKeyFile == "" && f.keyOut != "" {
		// Kept before the server is asked, as `est reenroll --rekey` does:
		// if the answer is lost after the server issued (and, at a
		// one-time challenge's profile, used the challenge up), the same
		// command asks again with this key and is given the certificate
		// issued for it; a new key would be refused for the used
		// challenge. One an earlier run kept is kept alike.
		kept = held
		if held == nil {
			at, err := saveHeldKey(f.keyOut, key, request, holdNever)
			if err != nil {
				return fmt.Errorf("keeping the key before asking for its certificate: %w", err)
			}
			kept = &heldKey{key: key, path: at, hold: holdNever}
		}
		saved = kept
		answeredNote = func(err error) error { return estEnrollKeyNote(err, kept, held != nil, true, c.Password != "") }
	}
	req.Held = markHeldWhenHeld(e, saved, request)
	res, err := c.Enroll(ctx, req)
	if err != nil {
		keyFlag := ""
		if op == "enroll" {
			keyFlag = "--csr-key"
		}
		var pe *client.PendingError
		if errors.As(err, &pe) {
			return pendingHint(err, key, plan.key == nil && csrKeyFile == "", f.keyOut, saved, request, "run the same command again", keyFlag)
		}
		err = fmt.Errorf("%s failed: %w", op, err)
		switch {
		case op == "enroll" && kept != nil:
			return estEnrollKeyNote(err, kept, held != nil, false, c.Password != "")
		case kept != nil:
			return keptKeyNote(err, kept, estKeptKeyFailure(err, c.Password != ""))
		}
		return heldKeyNoteFor(err, held, estFailure(err, c.Password != ""))
	}
	if res.Key != nil {
		key = res.Key
	}
	chain, err := c.CheckIssued(ctx, res.Certificate, key.Public())
	if err != nil {
		return answeredNote(fmt.Errorf("refusing what the server returned: %w", err))
	}
	// A renewal keeps the subject and SANs (RFC 7030 §4.2.2): a
	// certificate for other names is no renewal of --cert, and replaces
	// nothing. The key made (or kept by an earlier run) for it is dropped:
	// asked again with it, the server would return the same certificate. An enrollment's names may
	// be the profile's (subject_fixed), so there they are only reported.
	nameChange := client.NameChange
	if op != "reenroll" && (held != nil || csrKeyFile != "") {
		// Collected for a request held for approval: issued with the held
		// request's names, which the server took this request's for.
		nameChange = client.HeldNameChange
	}
	if change := nameChange(res.Certificate, tmpl); change != "" {
		if op == "reenroll" {
			refused := fmt.Errorf("refusing what the server returned: it is for other names than the certificate being renewed (%s): %s", f.certFile, change)
			unchanged := f.out + " is"
			if f.keyOut != "" && (kept == nil || kept.path != f.keyOut) {
				// --key-out holds what it held; a new key kept there
				// (it held nothing) is removed below.
				unchanged = f.out + " and " + f.keyOut + " are"
			}
			if kept == nil {
				return fmt.Errorf("%w; %s unchanged", refused, unchanged)
			}
			// Our own refusal, not the server's: asked again with this
			// key, the server would return the same certificate.
			dropKeptKey(kept)
			return fmt.Errorf("%w; %s unchanged, and the new key kept for this renewal in %s is removed (asked with it again, the server would return the same certificate): the next run makes a new one",
				refused, unchanged, kept.path)
		}
		fmt.Fprintf(e.stderr, "warning: the server issued other names than the request asked for: %s\n", change)
	}
	err = writeEnrollment(f.out, f.keyOut, f.chainOut, res.Certificate, key, chain)
	var noChain *chainNotWritten
	if errors.As(err, &noChain) {
		fmt.Fprintf(e.stderr, "warning: %v\n", err)
	} else if err != nil {
		return answeredNote(err)
	}
	forgetHeldKey(f.keyOut, saved)
	if csrKeyFile != "" {
		forgetHeldKey(csrKeyFile) // the key --csr-key named is an issued one now
	}
	cert := res.Certificate
	keyAt := f.keyOut
	if keyIn != "" {
		keyAt = keyIn + " (kept)"
	}
	fmt.Fprintf(e.stdout, "issued %s serial %s, valid until %s\ncertificate: %s\nkey:         %s\n",
		printable(cert.Subject.String()), pki.SerialText(cert.SerialNumber), cert.NotAfter.UTC().Format("2006-01-02 15:04:05Z"), f.out, keyAt)
	if res.Key != nil {
		how := "inside TLS"
		if res.KeyEncrypted {
			how = "encrypted to the request's key"
		}
		fmt.Fprintf(e.stdout, "key made by the server, delivered %s\n", how)
	}
	if err == nil && len(chain) > 0 {
		fmt.Fprintf(e.stdout, "CA chain:    %s\n", f.chainOut)
	}
	return nil
}

// estKeptKeyFailure is what an EST renewal's failure means for its kept
// key: a refusal (HTTP 4xx) as heldKeyFailure reads it (408 and 429, try
// again later; any other, the request), and anything else (no answer, a
// 5xx) leaves it to be asked again. A 401 refuses the credentials: a
// password (withPassword: one was sent) may be right next time, but the
// certificate being renewed, which the kept key is bound to, is refused
// for good (revoked, unknown), unless it is on hold; an expired one gets
// 403, a refusal like any other.
func estKeptKeyFailure(err error, withPassword bool) heldFailure {
	var he *client.HTTPError
	if !errors.As(err, &he) || he.Status < 400 {
		return notAnswered
	}
	if he.Status == http.StatusUnauthorized {
		switch reason := strings.ToLower(he.Reason); {
		case he.OtherAuthScheme() != "":
			return otherAuthScheme
		case saysTryLater(reason):
			return notAnswered
		case saysCertificateRefused(reason), !withPassword:
			return renewedCertRefused
		}
		return credentialsRefused
	}
	return heldKeyFailure(err)
}

// estEnrollKeyNote completes the error of an `est enroll` whose key was
// kept before it asked (takenUp: by an earlier run, held for approval or
// its answer lost); answered says the server's answer came and could not
// be used; withPassword that the run sent a password. A refusal is an
// HTTPError, read by estFailure (enrollKeyNote).
func estEnrollKeyNote(err error, kept *heldKey, takenUp, answered, withPassword bool) error {
	var he *client.HTTPError
	return enrollKeyNote(err, kept, takenUp, answered, errors.As(err, &he), estFailure(err, withPassword))
}

// enrollKeyNote completes the error of an enrollment (`est enroll`,
// SCEP `enroll`) whose key was kept before it asked (takenUp: by an
// earlier run, held for approval or its answer lost); answered says the
// server's answer came and could not be used (a *client.ReplyError is
// such an answer too); refused that the server refused the request, as
// failure reads it. No answer at all (a connection cut after the request
// went through, a timeout, a proxy's 5xx) may hide an issued certificate:
// the key stays, and the same command asks again with it. A refusal
// decides the rest: a final one (a 401 to an EST run that sent no
// password among them) removes a key this run made (a key an earlier run
// kept may be an approved request's, and heldKeyNoteFor says what to do
// with it); a refused challenge or password, a 401 asking for another
// scheme than Basic, or one that may pass (408, 429, 5xx), keeps it.
func enrollKeyNote(err error, kept *heldKey, takenUp, answered, refused bool, failure heldFailure) error {
	var pe *client.PendingError
	if err == nil || kept == nil || errors.As(err, &pe) {
		return err // pendingHint said where the key is
	}
	var re *client.ReplyError
	switch {
	case answered, errors.As(err, &re):
		return fmt.Errorf("%w; the key made for this request stays in %s: run the same command again, which asks with it", err, kept.path)
	case redirectedTo(err) != "":
		// A redirect is an answer, but not to the request: whatever
		// passed it on (a proxy, a balancer) may have taken it first.
		keyFlag := "--key"
		var he *client.HTTPError
		if errors.As(err, &he) {
			keyFlag = "--csr-key" // EST's
		}
		return fmt.Errorf("%w; the server redirected the request instead of answering it, and what passed it on may have taken it, so its key is kept in %s (with %s): keep it; the same command asks again with it, and so does a run at the URL it redirects to given %s %s",
			err, kept.path, kept.path+heldMarkerSuffix, keyFlag, kept.path)
	case !refused:
		return fmt.Errorf("%w; no answer came, so the certificate may have been issued: its key is kept in %s (with %s); keep it, and run the same command again, which asks again with that key",
			err, kept.path, kept.path+heldMarkerSuffix)
	}
	if failure == challengeRefused || failure == credentialsRefused {
		markSecretRefused(kept)
	}
	if takenUp {
		return heldKeyNoteFor(err, kept, failure)
	}
	switch failure {
	case refusedForGood, refusedOtherwise, expiredUndecided:
		dropKeptKey(kept)
		return fmt.Errorf("%w; a refusal is final, so the key kept for this request in %s is removed: the next run makes a new one", err, kept.path)
	case noPasswordRefused:
		dropKeptKey(kept)
		return fmt.Errorf("%w; this run sent no password, and a 401 to it is final: the key kept for this request in %s is removed (the next run makes a new one); "+
			"give --user and a password (--password-file or SCEPTER_EST_PASSWORD), or a client certificate the server takes (--cert, --key)", err, kept.path)
	case otherAuthScheme:
		return fmt.Errorf("%w; the key stays in %s: %s, which asks with it", err, kept.path, keptKeyRemedies[failure].again)
	case credentialsRefused, challengeRefused:
		r := keptKeyRemedies[failure]
		return fmt.Errorf("%w; %s: the key stays in %s; %s, which asks with it", err, r.refused, kept.path, r.again)
	}
	return fmt.Errorf("%w; the key is kept in %s: run the same command again later, which asks with it", err, kept.path)
}

// redirectedTo is where a redirect answered the request instead of the
// server (SCEP's RedirectError, EST's HTTPError with a Location); "" when
// err is no redirect.
func redirectedTo(err error) string {
	var sr *client.RedirectError
	var he *client.HTTPError
	switch {
	case errors.As(err, &sr):
		return sr.Location
	case errors.As(err, &he):
		return he.Redirect
	}
	return ""
}

// estFailure is heldKeyFailure for an EST enrollment, which knows whether
// it sent a password (withPassword): a 401 whose WWW-Authenticate offers
// only another scheme than Basic (Digest) judged no credentials
// (otherAuthScheme); any other 401 to a run that sent no password refused
// the run, not a password (noPasswordRefused), which README calls final.
func estFailure(err error, withPassword bool) heldFailure {
	var he *client.HTTPError
	if errors.As(err, &he) && he.Status == http.StatusUnauthorized {
		switch {
		case he.OtherAuthScheme() != "":
			return otherAuthScheme
		case !withPassword:
			return noPasswordRefused
		}
	}
	return heldKeyFailure(err)
}

// refuseReenrollFlags refuses the flags that reenroll cannot honour: a
// renewal asks for the names of the certificate being renewed (RFC 7030
// §4.2.2), so --subject and the SAN flags would be dropped without a word,
// and without --rekey it keeps the key of --key, so --key-type would be too.
func refuseReenrollFlags(given map[string]bool, rekey bool) error {
	for _, name := range []string{"subject", "dns", "ip", "email", "uri"} {
		if given[name] {
			return usageError{fmt.Sprintf("--%s is for enroll and serverkeygen: reenroll asks for the subject and SANs of --cert (RFC 7030 §4.2.2); for other names, enroll anew with est enroll", name)}
		}
	}
	if given["key-type"] && !rekey {
		return usageError{"--key-type is for reenroll only with --rekey: without it the renewal keeps the key of --key"}
	}
	return nil
}

// warnReenrollEnv warns of the variables of the flags refuseReenrollFlags
// refuses, which reenroll ignores as well: not refused, since one
// environment often serves enroll scripts too, but not dropped without a
// word either (a flag given on the command line is refused instead).
func warnReenrollEnv(e env, fromEnv func(flagName string) bool, rekey bool) {
	for _, name := range []string{"subject", "dns", "ip", "email", "uri"} {
		if fromEnv(name) {
			fmt.Fprintf(e.stderr, "warning: %s is set, and est reenroll ignores it: a renewal asks for the subject and SANs of --cert (RFC 7030 §4.2.2)\n", config.EnvName(name))
		}
	}
	if !rekey && fromEnv("key-type") {
		fmt.Fprintf(e.stderr, "warning: %s is set, and est reenroll ignores it without --rekey: the renewal keeps the key of --key\n", config.EnvName("key-type"))
	}
}

type names struct{ dns, ip, email, uri stringList }

// keyPlan is where a request's key comes from: key as it is, or else a
// new key of keyType.
type keyPlan struct {
	key     crypto.Signer
	keyType string
	// keyTypeGiven says the user chose keyType (--key-type, or its
	// variable SCEPTER_KEY_TYPE), which the server's /csrattrs then do not
	// change.
	keyTypeGiven bool
	// current is the key being renewed (reenroll --rekey): never the new
	// one, even when --key-out holds it.
	current crypto.PublicKey
	// renewed is the certificate being renewed (reenroll --rekey), which
	// names the request a kept key is for.
	renewed *x509.Certificate
}

// estRequestTemplate decides the CSR's names and key: from the flags, or
// for reenroll from the certificate being renewed (same names; same key
// unless --rekey).
func estRequestTemplate(op string, f *estFlags, subject, keyType string, keyTypeSet, rekey, encrypt bool, n names) (csr.Template, keyPlan, error) {
	var t csr.Template
	if op == "reenroll" {
		if f.certFile == "" {
			return t, keyPlan{}, usageError{"reenroll needs --cert and --key: the certificate to renew authenticates the request"}
		}
		certs, err := keys.LoadCertFile(f.certFile)
		if err != nil {
			return t, keyPlan{}, err
		}
		old := certs[0]
		key, err := keys.LoadKeyFile(f.keyFile)
		if err != nil {
			return t, keyPlan{}, err
		}
		t = agent.RenewalTemplate(old)
		if !rekey {
			return t, keyPlan{key: key}, nil
		}
		plan := keyPlan{keyType: keyType, keyTypeGiven: keyTypeSet, current: old.PublicKey, renewed: old}
		if !keyTypeSet {
			plan.keyType = keys.KeyTypeOf(old.PublicKey)
		}
		if !keys.ValidKeyType(plan.keyType) {
			return t, keyPlan{}, usageError{fmt.Sprintf("--key-type %q: want p256, p384, rsa2048, rsa3072 or rsa4096", plan.keyType)}
		}
		return t, plan, nil
	}
	if subject == "" && len(n.dns)+len(n.ip)+len(n.email)+len(n.uri) == 0 {
		return t, keyPlan{}, usageError{"--subject (or at least one SAN) is required"}
	}
	name, err := csr.ParseDN(subject)
	if err != nil {
		return t, keyPlan{}, usageError{"--subject: " + err.Error()}
	}
	t = csr.Template{RawSubject: name, DNSNames: n.dns, EmailAddresses: n.email}
	for _, s := range n.ip {
		ip := net.ParseIP(s)
		if ip == nil {
			return t, keyPlan{}, usageError{fmt.Sprintf("--ip %q is not an IP address", s)}
		}
		t.IPAddresses = append(t.IPAddresses, ip)
	}
	for _, s := range n.uri {
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" {
			return t, keyPlan{}, usageError{fmt.Sprintf("--uri %q is not an absolute URI", s)}
		}
		t.URIs = append(t.URIs, u)
	}
	if encrypt && !strings.HasPrefix(keyType, "rsa") {
		// The request's key receives the encrypted server key, and the
		// server makes a key of the request's type: a chosen EC type
		// cannot be had encrypted, and must not silently become RSA.
		if keyTypeSet {
			return t, keyPlan{}, usageError{fmt.Sprintf("--encrypt needs an RSA key for the request, and the server makes its key of that type: --key-type %q cannot be encrypted; use rsa2048, rsa3072 or rsa4096, or leave out --encrypt", keyType)}
		}
		keyType = keys.RSA2048
	}
	if !keys.ValidKeyType(keyType) {
		return t, keyPlan{}, usageError{fmt.Sprintf("--key-type %q: want p256, p384, rsa2048, rsa3072 or rsa4096", keyType)}
	}
	return t, keyPlan{keyType: keyType, keyTypeGiven: keyTypeSet}, nil
}

// keyIdentifier is RFC 5280 method 1 of a public key (how the
// AsymmetricDecryptKeyIdentifier names it).
func keyIdentifier(pub crypto.PublicKey) []byte {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	return est.KeyIdentifier(spki)
}

// estUser manages EST users in the store, beside a running server.
func estUser(ctx context.Context, e env, args []string) error {
	const usage = "usage: scepter est user add NAME --password-file F [--profile P] | est user list [--json] | est user remove NAME"
	sub, err := subcommand(e, args, usage)
	if err != nil {
		return err
	}
	var sf storeFlags
	var passwordFile, profile string
	var asJSON bool
	fs := newFlagSet(e, "est user "+sub, strings.TrimPrefix(usage, "usage: scepter "))
	sf.register(fs)
	maxArgs := 1
	switch sub {
	case "add":
		fs.StringVar(&passwordFile, "password-file", "", "file whose first line is the password (at least 12 characters and at most 1024 bytes in UTF-8, one of them visible: not all white space or invisible characters; or set SCEPTER_EST_PASSWORD)")
		fs.StringVar(&profile, "profile", "", "bind the user to one profile (EST label), where it enrolls whatever the profile's challenge mode; default: none, and it enrolls at the profiles whose challenge is static or any")
	case "list":
		fs.BoolVar(&asJSON, "json", false, "print JSON")
		maxArgs = 0
	case "remove":
	default:
		return usageError{usage}
	}
	if err := parseFlags(fs, e, args[1:], maxArgs, sf.sections()); err != nil {
		return err
	}
	if maxArgs == 1 && fs.NArg() != 1 {
		return usageError{usage}
	}
	var password string
	if sub == "add" {
		// A bad --password-file is a usage error, found before the store
		// is opened.
		if password, err = readSecret(e, "--password-file", passwordFile, "SCEPTER_EST_PASSWORD"); err != nil {
			return err
		}
	}
	svc, st, err := sf.adminService(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "add":
		u, err := svc.AddESTUser(ctx, fs.Arg(0), password, profile, cliActor())
		if err != nil {
			return argumentError(err)
		}
		where := "profiles whose challenge is static or any"
		if u.Profile != "" {
			where = "profile " + u.Profile
		} else if sf.configFile == "" {
			// The server's profiles come from its config file, which this
			// run was not given: the built-in default is no list of them.
			where = "it enrolls at the server's profiles whose challenge is static or any; pass --config to list them"
		} else if profiles, err := sf.profileSet(); err == nil {
			// Name them, and say so when there is none (r46: every
			// profile of examples/scepter.toml is onetime or webhook).
			var open []string
			for name, p := range profiles {
				if enroll.AdmitsUnboundUsers(p.ChallengeMode) {
					open = append(open, name)
				}
			}
			slices.Sort(open)
			if len(open) == 0 {
				fmt.Fprintf(e.stderr, "scepter: warning: no configured profile takes a user bound to none (each takes one-time or webhook challenges): %s enrolls nowhere until it is bound to one (remove it and add it again with --profile P)\n", printable(u.Name))
			} else {
				where += ": " + strings.Join(open, ", ")
			}
		}
		fmt.Fprintf(e.stdout, "EST user %s added (%s)\n", u.Name, where)
	case "remove":
		removed, err := svc.RemoveESTUser(ctx, fs.Arg(0), cliActor())
		if err != nil {
			return serviceError(err)
		}
		fmt.Fprintf(e.stdout, "EST user %s removed\n", removed)
	case "list":
		users, err := svc.ESTUsers(ctx)
		if err != nil {
			return serviceError(err)
		}
		if asJSON {
			type userJSON struct {
				Name      string    `json:"name"`
				Profile   string    `json:"profile"`
				CreatedAt time.Time `json:"created_at"`
				CreatedBy string    `json:"created_by"`
			}
			out := []userJSON{}
			for _, u := range users {
				out = append(out, userJSON{u.Name, u.Profile, u.CreatedAt.UTC(), u.CreatedBy})
			}
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tPROFILE\tCREATED\tBY")
		for _, u := range users {
			p := u.Profile
			if p == "" {
				p = "(static or any)" // the profiles whose challenge is static or any
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", printable(u.Name), printable(p), u.CreatedAt.UTC().Format(time.RFC3339), printable(u.CreatedBy))
		}
		return tw.Flush()
	}
	return nil
}

// readSecret reads a password from the file flagName names, or else from
// the environment.
func readSecret(e env, flagName, file, envName string) (string, error) {
	if err := refuseEnvAndFile(e, envName, strings.TrimPrefix(flagName, "--"), file); err != nil {
		return "", err
	}
	if file != "" {
		return passwordFromFile(flagName, file)
	}
	if v, ok := e.lookupEnv(envName); ok && v != "" {
		return v, nil
	}
	return "", usageError{flagName + " (or " + envName + ") is required"}
}

// passwordFromFile reads the password in the file a flag names: its
// first line, without the line end. Unlike secretFromFile it keeps the
// spaces (a password may begin or end with one). Every password file is
// read so, the one that sets a password (est user add, admin user add) as
// the one that presents it (est enroll, bench), as openssl's -passin
// file: reads one: a second line is no part of a password a person types.
// A file that cannot be read, or whose first line is empty, is refused as
// a misconfigured flag (exit 2) naming the flag and the file, for an empty
// password would be taken for none.
func passwordFromFile(flagName, path string) (string, error) {
	return readSecretFile(flagName, path, "password", func(s string) string {
		first, _, _ := strings.Cut(s, "\n")
		return strings.TrimRight(first, "\r")
	})
}
