package health

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"time"

	"github.com/scepter/scepter/internal/audit"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/migrate"
)

// Pinger is a store that can say whether it answers; store.Store is one.
type Pinger interface {
	Ping(ctx context.Context) error
}

// WriteProber is a store that can say whether it can write now;
// store.Store is one.
type WriteProber interface {
	CanWrite(ctx context.Context) error
}

// Store is the check that the store answers and, when p is a WriteProber,
// that it can write: a store that reads but refuses every write (a full
// disk, a database locked by another process, a read-only one) takes no
// enrollment, revocation or login, and appends nothing to the audit trail.
// A /readyz answer names the cause when the store knows it.
func Store(p Pinger) Check {
	return Check{Name: "store", Run: func(ctx context.Context) error {
		if err := p.Ping(ctx); err != nil {
			if errors.Is(err, store.ErrFileGone) {
				return &Shown{Name: "store", State: fileGoneState, Err: err}
			}
			return err
		}
		w, ok := p.(WriteProber)
		if !ok {
			return nil
		}
		err := w.CanWrite(ctx)
		switch cause := store.CannotWriteCause(err); {
		case err == nil:
			return nil
		case cause != nil:
			return &Shown{Name: "store", State: "cannot write: " + cause.Error(), Err: err}
		case ctx.Err() != nil:
			return fmt.Errorf("%w: %w", ErrTimedOut, err)
		}
		if errors.Is(err, store.ErrFileGone) {
			return &Shown{Name: "store", State: fileGoneState, Err: err}
		}
		return &Shown{Name: "store", State: "cannot write (the log says why)", Err: err}
	}}
}

// fileGoneState is the store check's state once its database file was
// removed or replaced (store.ErrFileGone). The log names the file, which
// of the two and what to do: restore a removed file before restarting,
// which would otherwise start on an empty store.
const fileGoneState = "database file removed or replaced since start (the log says which, and what to do)"

// SchemaState says whether the store's schema went past this binary's
// while the node runs; *postgres.Store is one.
type SchemaState interface {
	// SchemaAhead returns an error wrapping a *migrate.TooNewError once
	// the store is known to be newer, else nil; it reads nothing.
	SchemaAhead() error
}

// StoreSchema is the check that the store's schema is not newer than this
// node's scepter. A rolling upgrade's first new node migrates it while
// older nodes still run; those then record no issuance (the store refuses
// them), so a load balancer should send clients to the upgraded nodes. It
// reports what the store last learnt (its periodic check, or an issuance
// refused), so a probe costs no read. The store keeps that state after
// its schema goes back (a restore), so the state says to restart the node
// then, and names the version it saw.
func StoreSchema(s SchemaState) Check {
	return Check{Name: "store schema", Run: func(context.Context) error {
		err := s.SchemaAhead()
		var tooNew *migrate.TooNewError
		if errors.As(err, &tooNew) {
			return &Shown{Name: "store schema", Err: err,
				State: fmt.Sprintf("seen at version %d, newer than this node's %d: upgrade this node, or restart it if the store was restored to its version",
					tooNew.Have, tooNew.Known)}
		}
		return err
	}}
}

// AuditTrailTimeout bounds one run of the AuditTrail check, well within
// the checks' own timeout: four indexed reads that take longer say the
// store is in trouble, and the store check says the rest.
const AuditTrailTimeout = 2 * time.Second

// AuditTrail is the check that the audit trail can be appended to. A
// record inserted after its head, or its head deleted (with its records,
// or under them), outside scepter
// (audit.HeadIntact) has every enrollment, renewal and revocation refused
// with store.ErrAuditTampered: the node can issue nothing until the trail
// is mended. HeadIntact reads in an order that stays right while other
// nodes and CLI commands append, so the check never fails for them; a
// store that cannot be read fails it as it fails the store check.
func AuditTrail(c audit.Trail) Check {
	return Check{Name: "audit trail", Run: func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, AuditTrailTimeout)
		defer cancel()
		err := audit.HeadIntact(ctx, c)
		switch {
		case errors.Is(err, store.ErrAuditTampered):
			return &Shown{Name: "audit trail", State: "changed outside scepter, no write accepted (run scepter audit verify)", Err: err}
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("%w: %w", ErrTimedOut, err)
		}
		return err
	}}
}

// Keys are the issuing CAs and RAs; *ca.Authority is one.
type Keys interface {
	Active(now time.Time) (*ca.Issuer, *pki.RA)
}

// IssuerKey is the check that the issuing CA active now can sign.
func IssuerKey(k Keys, clock pki.Clock) Check {
	return Check{Name: "issuing CA key", Run: func(context.Context) error {
		now := clock.Now()
		issuer, _ := k.Active(now)
		if issuer == nil {
			return errors.New("no active issuing CA")
		}
		if err := validAt(issuer.Cert, now); err != nil {
			return fmt.Errorf("issuing CA %w", err)
		}
		return keyFailure("issuing CA key", CanSign(issuer.Signer, issuer.Cert))
	}}
}

// keyCauses are the causes of a key that cannot sign that a /readyz state
// names, in fixed words that hold no PIN, file or label: enough for an
// operator to know where to look (the log says the rest), and a changed
// cause is logged again (Checker.logChange) though no request arrives.
var keyCauses = []struct {
	err  error
	text string
}{
	{keys.ErrWrongPIN, "failed: PIN refused by the token"},
	{keys.ErrTokenNotFound, "failed: token not found"},
	{keys.ErrKeyNotFound, "failed: key not found in the token"},
}

// keyFailure is err, the failure of the key check name, shown with its
// cause when keyCauses knows it (else as "failed"); nil for nil.
func keyFailure(name string, err error) error {
	if err == nil {
		return nil
	}
	for _, c := range keyCauses {
		if errors.Is(err, c.err) {
			return &Shown{Name: name, State: c.text, Err: err}
		}
	}
	return err
}

// RAStatus says whether an RA may still be used: nil when it may, else
// why not: ErrRARevoked (its certificate is revoked and not yet replaced)
// or ErrRALacked (another node renewed it, and this one lacks the key)
// wrapped with the details, or any other failure (the store unreadable).
type RAStatus interface {
	RAUsable(ctx context.Context, ra *pki.RA) error
}

var (
	// ErrRARevoked: the RA's certificate is revoked, not yet replaced.
	ErrRARevoked = errors.New("the RA certificate is revoked")
	// ErrRALacked: the store records an RA renewed on another node whose
	// key this node lacks.
	ErrRALacked = errors.New("this node lacks the renewed RA's key")
)

// RAProblem is err, which says what is wrong with an RA in full, marked as
// kind (ErrRARevoked, ErrRALacked) without a word added to its text.
func RAProblem(kind, err error) error { return kindError{err: err, kind: kind} }

type kindError struct{ err, kind error }

func (e kindError) Error() string   { return e.err.Error() }
func (e kindError) Unwrap() []error { return []error{e.err, e.kind} }

// RAStatusTimeout bounds the RA check's read of the RA's status, well
// within the checks' own timeout, so that a store that does not answer
// (its server gone without a word) leaves time to try the key.
const RAStatusTimeout = 2 * time.Second

// RAKey is the check that the SCEP RA active now can sign (with --scep-ra
// ca, the issuing CA's key again) and, with status, that it may still be
// used: a revoked RA fails the check until it is replaced. A store that
// cannot be reached, which status then says, does not fail it: the store
// check fails for that and names it, and an operator told "RA key" would
// look at the key or the HSM. A store that answers but whose answer
// cannot be read fails it as the RA certificate's status, not its key.
func RAKey(k Keys, clock pki.Clock, status RAStatus) Check {
	return Check{Name: "RA key", Run: func(ctx context.Context) error {
		now := clock.Now()
		issuer, ra := k.Active(now)
		if ra == nil {
			return errors.New("no active RA")
		}
		if err := validAt(ra.Cert, now); err != nil {
			return fmt.Errorf("RA certificate %w", err)
		}
		if status != nil {
			// The key is fine: say what is not, in words fixed here, and
			// which certificate (the error, for the log, says why).
			sctx, cancel := context.WithTimeout(ctx, RAStatusTimeout)
			err := status.RAUsable(sctx, ra)
			late := sctx.Err() != nil
			cancel()
			switch {
			case errors.Is(err, ErrRARevoked):
				return &Shown{Name: "RA certificate", State: raNamed(issuer, ra) + " revoked, not yet replaced (the log says why)", Err: err}
			case errors.Is(err, ErrRALacked):
				return &Shown{Name: "RA key", State: "lacking the RA renewed on another node (the log says how to bring it here)", Err: err}
			case errors.Is(err, store.ErrUnavailable), err != nil && late:
				// Out of reach, or no answer in time: the store
				// check's to report.
			case err != nil:
				return &Shown{Name: "RA certificate", State: "status unreadable in the store (the log says why)", Err: err}
			}
		}
		return keyFailure("RA key", CanSign(ra.Key, ra.Cert))
	}}
}

// raNamed names ra for /readyz: its serial and the issuing CA that
// certified it (its subject and the start of its issuer ID, as the log
// names it). Both are in every GetCACert answer: nothing secret.
func raNamed(issuer *ca.Issuer, ra *pki.RA) string {
	s := "serial " + pki.SerialText(ra.Cert.SerialNumber)
	if issuer != nil && len(issuer.ID) >= 16 {
		s += fmt.Sprintf(" of issuing CA %q (%s)", issuer.Cert.Subject.String(), issuer.ID[:16])
	}
	return s
}

// Shown is a check's error that a /readyz answer names as Name (in place
// of the check's) and State (in place of "failed"): fixed words that say
// more than "failed" and name no file or device. Err goes to the log.
type Shown struct {
	Name, State string
	Err         error
}

func (e *Shown) Error() string { return e.Name + " " + e.State + ": " + e.Err.Error() }

func (e *Shown) Unwrap() error { return e.Err }

// validAt: cert is within its validity at now. A key that signs under a
// certificate that has expired issues nothing a relying party accepts.
func validAt(cert *x509.Certificate, now time.Time) error {
	switch {
	case now.Before(cert.NotBefore):
		return fmt.Errorf("not valid before %s", cert.NotBefore.UTC().Format(time.RFC3339))
	case !now.Before(cert.NotAfter):
		return fmt.Errorf("expired on %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// probe is the message every readiness signature is over.
var probe = []byte("scepter readiness probe: this key signs")

// CanSign signs a fixed digest with signer and verifies the signature with
// cert's public key: the key answers (a file key, or an HSM session that is
// still open) and is the one the certificate names.
func CanSign(signer crypto.Signer, cert *x509.Certificate) error {
	if signer == nil || cert == nil {
		return errors.New("no key or certificate loaded")
	}
	var alg x509.SignatureAlgorithm
	var opts crypto.SignerOpts = crypto.SHA256
	switch cert.PublicKey.(type) {
	case *rsa.PublicKey:
		alg = x509.SHA256WithRSA
	case *ecdsa.PublicKey:
		alg = x509.ECDSAWithSHA256
	case ed25519.PublicKey:
		alg, opts = x509.PureEd25519, crypto.Hash(0)
	default:
		return fmt.Errorf("certificate key of type %T", cert.PublicKey)
	}
	digest := probe
	if opts.HashFunc() != 0 {
		sum := sha256.Sum256(probe)
		digest = sum[:]
	}
	sig, err := signer.Sign(rand.Reader, digest, opts)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if err := cert.CheckSignature(alg, probe, sig); err != nil {
		return fmt.Errorf("the signature does not verify with the certificate's key: %w", err)
	}
	return nil
}

// fileCauses are the file-system errors a /readyz state may name, in
// fixed words that name no file: why a node cannot write a file it must.
var fileCauses = []struct {
	err  error
	text string
}{
	{syscall.ENOSPC, "the disk is full"},
	{syscall.EDQUOT, "the disk quota is used up"},
	{syscall.EROFS, "the file system is read-only"},
	{fs.ErrPermission, "permission denied"},
	{syscall.ENOTDIR, "a file stands where its directory belongs"},
}

// FileWriteCause says in fixed words why a file could not be written, for
// a /readyz state ("the disk is full"), or "" when err is none of the
// causes it knows (the log then says why).
func FileWriteCause(err error) string {
	for _, c := range fileCauses {
		if errors.Is(err, c.err) {
			return c.text
		}
	}
	return ""
}
