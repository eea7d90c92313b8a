package main

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// A request held for approval can only be collected with the key it was
// made with: the server knows it by that key (a SCEP transactionID is the
// key's hash, an EST request is held under it). So a key made for such a
// request is saved at once, and the next run of the same command takes it
// up again instead of making a new key, which would be a second request
// and leave the approved one for a key that no longer exists.
//
// Only a key saved so is taken up, and only by the same request: beside
// it a marker (KEY.request) names the key and the request (its command,
// URL and names, or the certificate it renews). Any other key at
// --key-out, an issued enrollment's above all, is no held key: taking it
// up would certify one private key for two devices.

// heldKeySuffix marks where a held request's key goes when --key-out holds
// another key (the one being renewed, say), which stays until a
// certificate is issued.
const heldKeySuffix = ".pending"

// heldMarkerSuffix marks the file beside a held key that names the key
// and the request it was made for.
const heldMarkerSuffix = ".request"

// heldRequest identifies the request a held key is for: SHA-256s of what
// makes it the same request. names hashes an enrollment's names as the
// server compares a held request's retry (csr.HeldNameKey, csr.NameKeys),
// so that a retry the server takes for the held request (CN=Ap-2 for a
// held CN=ap-2) takes its key up. exact hashes them as sent: the only hash
// older builds wrote and read, still read (their markers) and written
// (for them, should one run again). A renewal has only exact: the
// certificate it renews names it.
type heldRequest struct {
	exact string
	names string
}

// isZero: no request is named (no marker, or one without a request).
func (r heldRequest) isZero() bool { return r.exact == "" && r.names == "" }

// matches: the marker's request (r) is req, by either hash.
func (r heldRequest) matches(req heldRequest) bool {
	return r.exact != "" && r.exact == req.exact || r.names != "" && r.names == req.names
}

// newHeldRequest is the request that fields identify exactly.
func newHeldRequest(fields ...[]byte) heldRequest {
	return heldRequest{exact: hashFields(fields...)}
}

// hashFields hashes fields, each length-prefixed so that no two lists of
// fields hash alike.
func hashFields(fields ...[]byte) string {
	h := sha256.New()
	for _, f := range fields {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// heldNamesForm tags the names hash, so that it never equals an exact one.
const heldNamesForm = "names/held-match"

// enrollmentRequest is an enrollment's identity: the command (op), the
// server's URL (its profile with it), the subject and the SANs, in any
// order; exactly as sent, and as the server's held match compares them
// (the subject by csr.HeldNameKey, each SAN by its csr key, each once).
func enrollmentRequest(op, serverURL string, t csr.Template) heldRequest {
	var sans, sanKeys []string
	for _, n := range t.DNSNames {
		sans, sanKeys = append(sans, "dns:"+n), append(sanKeys, "dns:"+csr.DNSNameKey(n))
	}
	for _, n := range t.EmailAddresses {
		sans, sanKeys = append(sans, "email:"+n), append(sanKeys, "email:"+csr.EmailKey(n))
	}
	for _, n := range t.IPAddresses {
		sans, sanKeys = append(sans, "ip:"+n.String()), append(sanKeys, "ip:"+n.String())
	}
	for _, n := range t.URIs {
		sans, sanKeys = append(sans, "uri:"+n.String()), append(sanKeys, "uri:"+csr.URIKey(n))
	}
	slices.Sort(sans)
	slices.Sort(sanKeys)
	sanKeys = slices.Compact(sanKeys)
	url := []byte(strings.TrimRight(serverURL, "/"))
	exact := [][]byte{[]byte(op), url, t.RawSubject}
	for _, n := range sans {
		exact = append(exact, []byte(n))
	}
	// A subject that is no well-formed Name (none is: csr.ParseDN made
	// it) is compared by its bytes, as csr.SameHeldName does.
	subject := "der:" + hex.EncodeToString(t.RawSubject)
	if key, ok := csr.HeldNameKey(t.RawSubject); ok {
		subject = "name:" + key
	}
	names := [][]byte{[]byte(heldNamesForm), []byte(op), url, []byte(subject)}
	for _, n := range sanKeys {
		names = append(names, []byte(n))
	}
	return heldRequest{exact: hashFields(exact...), names: hashFields(names...)}
}

// renewalRequest is a re-key's identity: the command and the certificate
// it renews. Not the URL: the certificate makes it the same renewal, and
// after a lost answer it is asked for again wherever the server is.
func renewalRequest(op string, renewed *x509.Certificate) heldRequest {
	return newHeldRequest([]byte(op), renewed.Raw)
}

// heldKey is the key of a request held for approval, or kept for one
// that got no certificate.
type heldKey struct {
	key  crypto.Signer
	path string // where it is saved
	hold holdState
}

// holdState is what a kept key's marker says of its request's answers:
// whether the server ever held it for approval.
type holdState int

const (
	// holdUnknown: a marker of an older build, which did not say.
	holdUnknown holdState = iota
	// holdNever: kept before asking, and no answer held the request (its
	// answer was lost, or the server said to try again later).
	holdNever
	// holdAnswered: the server held the request for approval (SCEP
	// PENDING, EST 202).
	holdAnswered
	// holdRefusedSecret: never held, and the last answer refused the
	// request's challenge or password, not its key.
	holdRefusedSecret
)

// heldMarkerRefusedLine is the marker's line saying that the last answer
// refused the challenge or password (holdRefusedSecret); builds that do
// not know it skip it, and read "held for approval: no".
const heldMarkerRefusedLine = "refused: the challenge or password"

// heldMarkerHoldLine is the marker's line saying whether a hold was
// answered: "yes" or "no"; older builds wrote none, and skip it.
const heldMarkerHoldLine = "held for approval: "

// whose names, in a message, the request whose key a kept key is: held
// for approval, or one that got no certificate, as the marker says.
func (h *heldKey) whose() string {
	switch h.hold {
	case holdAnswered:
		return "the key of the request held for approval earlier, the only key its certificate is given for"
	case holdNever:
		return "the key of this request, kept by an earlier run that got no certificate, the only key a certificate issued for it is given for"
	case holdRefusedSecret:
		return "the key of this request, kept by an earlier run whose challenge or password was refused, the only key a certificate issued for it is given for"
	}
	return "the key of this request, saved by an earlier run that was held for approval or whose answer was lost, the only key its certificate is given for"
}

// savedFor says, in a message, what the key was saved for.
func (h *heldKey) savedFor() string {
	switch h.hold {
	case holdAnswered:
		return "saved for a request held for approval earlier"
	case holdNever:
		return "kept for this request by an earlier run that got no certificate"
	case holdRefusedSecret:
		return "kept for this request by an earlier run whose challenge or password was refused"
	}
	return "saved for this request by an earlier run that was held for approval or whose answer was lost"
}

// findHeldKey returns the key an earlier run saved for this request (req)
// when it was held or its answer lost: keyOut+".pending", else keyOut,
// when its marker names that key and req, unless that is the key being
// renewed (current) or the key of the certificate in certOut; those are
// what an earlier run left after it was issued. It returns nil when there
// is none.
func findHeldKey(keyOut, certOut string, current crypto.PublicKey, req heldRequest) (*heldKey, error) {
	if keyOut == "" {
		return nil, nil
	}
	var issued crypto.PublicKey
	if certs, err := keys.LoadCertFile(certOut); err == nil {
		issued = certs[0].PublicKey
	}
	for _, path := range []string{keyOut + heldKeySuffix, keyOut} {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		markedKey, markedReq, hold := readHeldMarker(path)
		if !markedReq.matches(req) {
			continue // no held key, or another request's
		}
		key, err := keys.LoadKeyFile(path)
		if err != nil {
			if path == keyOut {
				continue // not a held key: replaced on success, as always
			}
			return nil, fmt.Errorf("%w (it should hold the key of a request held for approval: remove it to make a new key and a new request)", err)
		}
		if markedKey != spkiHash(key.Public()) || pki.SamePublicKey(key.Public(), current) || pki.SamePublicKey(key.Public(), issued) {
			continue
		}
		return &heldKey{key: key, path: path, hold: hold}, nil
	}
	return nil, nil
}

// saveHeldKey saves the key of a request (req) held for approval (hold:
// holdAnswered), or about to be asked for (holdNever), in keyOut, or, when
// keyOut holds another file, in keyOut+".pending"; it never replaces a
// file holding anything else. Its marker beside it says which request it
// is for, and whether it was held. It returns where the key is.
func saveHeldKey(keyOut string, key crypto.Signer, req heldRequest, hold holdState) (string, error) {
	for _, path := range []string{keyOut, keyOut + heldKeySuffix} {
		ok, err := writeKeyIfAbsent(path, key)
		if err != nil {
			return "", err
		}
		if ok {
			if err := writeHeldMarker(path, key.Public(), req, hold); err != nil {
				return "", err
			}
			return path, nil
		}
	}
	return "", fmt.Errorf("%s and %s hold other files (%s holds no key kept for this request: %s does not name it); move %s away to make a new key",
		keyOut, keyOut+heldKeySuffix, keyOut+heldKeySuffix, keyOut+heldKeySuffix+heldMarkerSuffix, keyOut+heldKeySuffix)
}

// writeKeyIfAbsent writes key (mode 0600, atomically) to path when no file
// is there, and reports whether path now holds key.
func writeKeyIfAbsent(path string, key crypto.Signer) (bool, error) {
	if existing, err := keys.LoadKeyFile(path); err == nil {
		return pki.SamePublicKey(existing.Public(), key.Public()), nil
	}
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("saving the key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("saving the key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return false, fmt.Errorf("saving the key: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := keys.WriteKeyFile(tmp.Name(), key); err != nil {
		return false, err
	}
	// A link is made only where no file is: a file that appeared at path
	// meanwhile is left as it is.
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("saving the key: %w", err)
	}
	if d, err := os.Open(dir); err == nil { // the new name survives a crash
		d.Sync()
		d.Close()
	}
	return true, nil
}

// spkiHash is the SHA-256 of a public key's SubjectPublicKeyInfo, in hex.
func spkiHash(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// writeHeldMarker writes, atomically, the marker beside the held key in
// keyPath: which key it is and which request it is for ("request", which
// every build reads, and "names" where the request has that form), and
// whether the server held that request for approval (hold).
func writeHeldMarker(keyPath string, pub crypto.PublicKey, req heldRequest, hold holdState) error {
	path := keyPath + heldMarkerSuffix
	why, held := "no certificate came: its answer was lost, or the server said to try again later", "no"
	switch hold {
	case holdAnswered:
		why, held = "held for approval", "yes"
	case holdRefusedSecret:
		why = "the server refused its challenge or password, not its key"
	}
	text := fmt.Sprintf("# scepter: the key in %s was made for a request an earlier run could not complete (%s);\n"+
		"# the same command takes it up again. Remove both files to make a new key and a new request.\nkey sha256:%s\nrequest sha256:%s\n",
		filepath.Base(keyPath), why, spkiHash(pub), req.exact)
	if req.names != "" {
		text += fmt.Sprintf("names sha256:%s\n", req.names)
	}
	text += heldMarkerHoldLine + held + "\n"
	if hold == holdRefusedSecret {
		text += heldMarkerRefusedLine + "\n"
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("saving which request the key is for: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(text)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("saving which request the key is for in %s: %w", path, err)
	}
	return nil
}

// readHeldMarker returns the key hash and the request that the marker
// beside keyPath names, and whether that request was held for approval;
// "" and no request when there is none. A marker of an older build has no
// "names" line: its request matches the same names exactly; nor a hold
// line: holdUnknown.
func readHeldMarker(keyPath string) (keyHash string, req heldRequest, hold holdState) {
	data, err := os.ReadFile(keyPath + heldMarkerSuffix)
	if err != nil {
		return "", heldRequest{}, holdUnknown
	}
	refused := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == heldMarkerRefusedLine {
			refused = true
		} else if v, ok := strings.CutPrefix(line, "key sha256:"); ok {
			keyHash = strings.TrimSpace(v)
		} else if v, ok := strings.CutPrefix(line, "request sha256:"); ok {
			req.exact = strings.TrimSpace(v)
		} else if v, ok := strings.CutPrefix(line, "names sha256:"); ok {
			req.names = strings.TrimSpace(v)
		} else if v, ok := strings.CutPrefix(line, heldMarkerHoldLine); ok {
			switch strings.TrimSpace(v) {
			case "yes":
				hold = holdAnswered
			case "no":
				hold = holdNever
			}
		}
	}
	if keyHash == "" {
		return "", heldRequest{}, holdUnknown
	}
	if refused && hold == holdNever {
		hold = holdRefusedSecret
	}
	return keyHash, req, hold
}

// markHeldWhenHeld is the client's Held hook for a request whose key is
// kept (kept; nil: none, and no hook): at the first answer that holds the
// request for approval, the key's marker says so, before the wait for the
// decision. A run killed during that wait (SIGKILL, a reboot), which
// pendingHint never sees, leaves a marker that says the request was held,
// not that its answer was lost. A marker that cannot be written is warned
// of: the key stays, and pendingHint tries again.
func markHeldWhenHeld(e env, kept *heldKey, req heldRequest) func() {
	if kept == nil {
		return nil
	}
	return func() {
		if kept.hold == holdAnswered {
			return
		}
		if err := writeHeldMarker(kept.path, kept.key.Public(), req, holdAnswered); err != nil {
			fmt.Fprintf(e.stderr, "warning: the request is held for approval, and its key's marker could not say so: %v\n", err)
			return
		}
		kept.hold = holdAnswered
	}
}

// markSecretRefused records in a kept key's marker that the server
// refused the request's challenge or password, so that the run that takes
// the key up says so rather than that an answer was lost. A request once
// held stays so; a marker that cannot be rewritten keeps its words.
func markSecretRefused(kept *heldKey) {
	if kept == nil || kept.hold == holdAnswered {
		return
	}
	_, req, hold := readHeldMarker(kept.path)
	if hold == holdAnswered || req.isZero() {
		return
	}
	if writeHeldMarker(kept.path, kept.key.Public(), req, holdRefusedSecret) == nil {
		kept.hold = holdRefusedSecret
	}
}

// pendingHint turns the error of a request held for approval into what to
// do: a key made for it (made) is saved, and the message says where, and
// that running the same command again (again) collects the certificate;
// keyFlag, when set, is the flag that names the key explicitly. Other
// errors are returned as they are.
func pendingHint(err error, key crypto.Signer, made bool, keyOut string, held *heldKey, req heldRequest, again, keyFlag string) error {
	var pe *client.PendingError
	if !errors.As(err, &pe) {
		return err
	}
	keyAt := ""
	switch {
	case held != nil:
		keyAt = held.path
		if held.hold != holdAnswered {
			// Kept before asking, or after an answer that held nothing:
			// the marker says from now on that the request is held.
			if merr := writeHeldMarker(held.path, held.key.Public(), req, holdAnswered); merr != nil {
				return fmt.Errorf("%w, and its key's marker could not say so (%v); its key is in %s: to collect the certificate once it is approved, %s, which takes that key up", err, merr, keyAt, again)
			}
			held.hold = holdAnswered
		}
	case made && keyOut != "":
		at, serr := saveHeldKey(keyOut, key, req, holdAnswered)
		if serr != nil {
			return fmt.Errorf("%w, and its key could not be saved (%v): have the request rejected, and start again", err, serr)
		}
		keyAt = at
	}
	// Asked to wait and still held: the hint is to run again later, not
	// to add the flag given. A stopped wait says so itself (PendingError).
	waitHint := "add --max-wait to wait for it"
	switch {
	case pe.Stopped != nil:
		waitHint = ""
	case !pe.AskAgainAt.IsZero():
		// The error names that time already.
		waitHint = "run it at or after that time, when the server asked to be asked again"
	case pe.Waited > 0:
		waitHint = fmt.Sprintf("it was still held after --max-wait %s", pe.Waited)
	}
	if keyAt == "" {
		if waitHint != "" {
			again += " (" + waitHint + ")"
		}
		return fmt.Errorf("%w; to collect the certificate once it is approved, %s", err, again)
	}
	explicit := ""
	if keyFlag != "" {
		explicit = fmt.Sprintf(" (or pass %s %s)", keyFlag, keyAt)
	}
	if waitHint != "" {
		explicit += "; " + waitHint
	}
	return fmt.Errorf("%w; its key is saved in %s: to collect the certificate once it is approved, %s, which takes that key up%s", err, keyAt, again, explicit)
}

// heldKeyNote says, after a failure of a request that took up a held key,
// what to do with that key; err is the failure as told, cause the
// client's error it came from (which err may only quote). The advice
// depends on what went wrong (heldKeyFailure): only a request refused for
// good needs a new key; after a refused challenge or password, or a
// server that did not answer, the key is still the held request's, and
// its certificate, once approved, is collected only with it.
func heldKeyNote(err, cause error, held *heldKey) error {
	return heldKeyNoteFor(err, held, heldKeyFailure(cause))
}

// heldKeyNoteFor is heldKeyNote for a failure already classified: a run
// that failed before it sent the request (the server down at /csrattrs or
// GetCACaps) is notAnswered, whatever the error.
func heldKeyNoteFor(err error, held *heldKey, failure heldFailure) error {
	var pe *client.PendingError
	if err == nil || held == nil || errors.As(err, &pe) {
		return err
	}
	marker := held.path + heldMarkerSuffix
	switch failure {
	case refusedForGood:
		return fmt.Errorf("%w (the request used the key in %s, %s, which the server refused for good: remove it and %s to make a new key and a new request)", err, held.path, held.savedFor(), marker)
	case expiredUndecided:
		return fmt.Errorf("%w (the request held for approval earlier, whose key is in %s, expired before anyone decided it, and its transaction with it: remove it and %s to make a new key and a new request, with a new one-time challenge if it used one)", err, held.path, marker)
	case challengeRefused, credentialsRefused:
		r := keptKeyRemedies[failure]
		return fmt.Errorf("%w (%s: %s is still %s; keep it, and %s)", err, r.refused, held.path, held.whose(), r.again)
	case notAnswered:
		return fmt.Errorf("%w (%s is still %s; keep it, and run the same command again later, which takes it up)", err, held.path, held.whose())
	case otherAuthScheme:
		return fmt.Errorf("%w (%s is still %s; keep it, and %s, which takes it up)", err, held.path, held.whose(), keptKeyRemedies[failure].again)
	case noPasswordRefused:
		return fmt.Errorf("%w (this run sent no password, so none was refused: %s is still %s; keep it, and run the same command again with --user and a password (--password-file or SCEPTER_EST_PASSWORD), or with a client certificate the server takes)", err, held.path, held.whose())
	}
	return fmt.Errorf("%w (the request used the key in %s, %s: if the server rejected that request, remove it and %s to make a new key and a new request; otherwise keep it, the only key its certificate is given for)", err, held.path, held.savedFor(), marker)
}

// keptKeyRemedies are the words that heldKeyNoteFor, keptKeyNote and
// enrollKeyNote share for a failure that refused no key: what was refused
// instead ("" when nothing was judged) and how to run the command again,
// with which each note says the key is kept and asked with. The notes
// frame them in their own words: a key an earlier run kept (advice only),
// a renewal's new key, an enrollment's key.
var keptKeyRemedies = map[heldFailure]struct{ refused, again string }{
	challengeRefused: {"the challenge was refused, not the key", "run the same command again with the right --challenge"},
	credentialsRefused: {"the credentials were refused, not the key",
		"run the same command again with the right --user and password (--password-file or SCEPTER_EST_PASSWORD) or client certificate"},
	otherAuthScheme: {"", "once the server takes HTTP Basic or a client certificate, run the same command again"},
}

// heldFailure is what went wrong with a request that took up a held key.
type heldFailure int

const (
	refusedOtherwise   heldFailure = iota // a refusal of another kind, or another server's words
	refusedForGood                        // the request was rejected, or the key holds another request
	challengeRefused                      // SCEP: the challenge password
	credentialsRefused                    // EST: 401, the user and password or the client certificate
	notAnswered                           // no answer, or one that says to try again later
	renewedCertRefused                    // EST: 401 for the certificate being renewed (revoked, unknown, expired)
	expiredUndecided                      // the held request expired before anyone approved or rejected it
	otherAuthScheme                       // EST: 401 asking for another scheme than Basic (Digest): nothing judged
	noPasswordRefused                     // EST: 401 to a run that sent no password (est enroll: final)
)

// heldKeyFailure tells, from the client's error, what went wrong. SCEP
// gives a rejection and a wrong challenge one failInfo (badRequest), so
// its reason, in this server's words, tells them apart; another server's
// words are a refusal of another kind.
func heldKeyFailure(err error) heldFailure {
	var fe *client.FailureError
	var he *client.HTTPError
	switch {
	case errors.As(err, &fe):
		switch text := strings.ToLower(fe.Text); {
		case strings.Contains(text, "without a decision"):
			return expiredUndecided
		case strings.Contains(text, "the request was rejected"), strings.Contains(text, "holds another request of this key"), saysKeyRefusedForGood(text):
			return refusedForGood
		case saysTryLater(text):
			return notAnswered
		case strings.Contains(text, "challenge password is bound to"):
			// The challenge is right and bound to other names or another
			// profile: the request is refused as it stands, and its key
			// with it, so that a run with the bound names is not refused
			// for holding this one's.
			return refusedForGood
		case strings.Contains(text, "challenge password"):
			return challengeRefused
		}
		return refusedOtherwise
	case errors.As(err, &he):
		reason := strings.ToLower(he.Reason)
		switch {
		case he.Status == http.StatusUnauthorized:
			return credentialsRefused
		case strings.Contains(reason, "without a decision"):
			return expiredUndecided
		case he.Status == http.StatusRequestTimeout, he.Status == http.StatusTooManyRequests, he.Status >= 500:
			return notAnswered
		case strings.Contains(reason, "the request was rejected"), strings.Contains(reason, "sent before with other names"), saysKeyRefusedForGood(reason):
			return refusedForGood
		case saysTryLater(reason):
			return notAnswered
		}
		return refusedOtherwise
	}
	return notAnswered // no answer: the server down, a lost connection, a timeout
}

// saysKeyRefusedForGood: a refusal's text (lower case), in this server's
// words (internal/enroll), says no certificate will ever be given for the
// key: it was revoked as compromised, or the certificate approved for it
// was revoked before it was collected (a hold says "lift the hold").
func saysKeyRefusedForGood(text string) bool {
	return strings.Contains(text, "revoked as compromised") || strings.Contains(text, "before it was collected")
}

// saysTryLater: a refusal's text (lower case), in this server's words,
// says it passes: an address locked out after too many wrong challenges or
// passwords (internal/enroll steps.go lockedOut, which SCEP sends as a
// badRequest FAILURE, and the LockedOutError it wraps; EST sends the same
// text with 429), too many requests (internal/server limits.go, 429), a
// certificate on hold until the operator lifts it, or a plain "try again".
// The key is kept for those.
func saysTryLater(text string) bool {
	for _, s := range []string{"too many failed attempts", "locked out", "too many requests", "lift the hold", "try again"} {
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}

// saysCertificateRefused: an EST 401's reason (lower case), in this
// server's words (internal/enroll renewal.go), refuses the client
// certificate itself: revoked, expired, not this CA's or not in its
// inventory. Another password cannot change that.
func saysCertificateRefused(reason string) bool {
	if !strings.Contains(reason, "certificate") {
		return false
	}
	for _, s := range []string{"revoked", "expired", "not issued by this ca", "not in this ca's inventory", "not the certificate this ca issued", "unknown"} {
		if strings.Contains(reason, s) {
			return true
		}
	}
	return false
}

// forgetHeldKey removes the ".pending" copy of a held key once its
// certificate is issued and the key written to --key-out, and the markers
// that made it a held key: the key at --key-out is now an issued one,
// which no later request takes up.
func forgetHeldKey(keyOut string, held ...*heldKey) {
	for _, h := range held {
		if h == nil {
			continue
		}
		if h.path == keyOut+heldKeySuffix {
			os.Remove(h.path)
		}
		os.Remove(h.path + heldMarkerSuffix)
	}
	if keyOut != "" {
		os.Remove(keyOut + heldMarkerSuffix)
	}
}

// dropKeptKey removes a kept key and its marker: the request it was for
// was refused, and the next run makes a new key.
func dropKeptKey(kept *heldKey) {
	os.Remove(kept.path)
	os.Remove(kept.path + heldMarkerSuffix)
}

// announceHeldKey tells the user the key an earlier run kept for this
// request is taken up, and why it was kept, as its marker says. It gives
// no advice: what to do with the key depends on this run's answer, which
// says it.
func announceHeldKey(e env, held *heldKey) {
	why := "which was held for approval or whose answer was lost"
	switch held.hold {
	case holdAnswered:
		why = "which was held for approval"
	case holdNever:
		why = "which got no certificate (its answer was lost, or the server said to try again later)"
	case holdRefusedSecret:
		why = "whose challenge or password the server refused (not the key)"
	}
	fmt.Fprintf(e.stderr, "using the key in %s, kept by an earlier run of this request, %s: asking with it again\n", held.path, why)
}

// checkKeyOut refuses a --key-out that holds another private key than
// the one the request uses (key) or the one being renewed (renewed, nil
// for none), or anything else that is not an empty file, unless force:
// writing the new key there would lose it without a word, and with it the
// certificate it belongs to (two enrollments in one directory both
// default to key.pem).
func checkKeyOut(keyOut string, force bool, key, renewed crypto.PublicKey, keyFlag string) error {
	if keyOut == "" || force {
		return nil
	}
	data, err := os.ReadFile(keyOut)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--key-out %s: %w", keyOut, err)
	}
	defer clear(data)
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	const advice = "name another --key-out, move it away, or pass --force to replace it"
	existing, err := keys.ParseKeyPEM(data)
	if err != nil {
		return fmt.Errorf("--key-out %s holds something that is not this request's key (%v), which writing the new key would replace; %s", keyOut, err, advice)
	}
	if pki.SamePublicKey(existing.Public(), key) || renewed != nil && pki.SamePublicKey(existing.Public(), renewed) {
		return nil
	}
	if keyHash, req, _ := readHeldMarker(keyOut); !req.isZero() && keyHash == spkiHash(existing.Public()) {
		// The marker ties the key to its request's URL too: the same
		// request through a proxy or another node names it by keyFlag.
		withKey := ""
		if keyFlag != "" {
			withKey = fmt.Sprintf("; if it is this request's, sent to another --url (a proxy, another node), pass %s %s to ask with that key", keyFlag, keyOut)
		}
		return fmt.Errorf("--key-out %s already holds the key of another request (other names, URL or command) that an earlier run could not complete, as %s says; writing the new key would replace it%s; otherwise %s", keyOut, keyOut+heldMarkerSuffix, withKey, advice)
	}
	return fmt.Errorf("--key-out %s already holds another private key (an earlier enrollment's?), which writing the new key would replace, leaving its certificate without a key; %s", keyOut, advice)
}
