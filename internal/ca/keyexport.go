package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// A key export carries the CA's key material and certificates from one
// node's data directory to another's (scepter ca export-keys, import-keys):
// every file of dir/ca (the current generation, next/ and previous/<id>/;
// root.key only when asked for), and the files of other directories of the
// node that hold keys the CA's issuers use (the OCSP responders'). Keys are
// read and written through keys.Dir, which refuses a key in a PKCS#11
// token: such keys never leave their token, and other nodes use the same
// token instead.

// KeyExportFormat names the format of a marshalled KeyExport.
const KeyExportFormat = "scepter-ca-keys/1"

// ErrDifferentCA: import-keys into a data directory that holds another CA.
var ErrDifferentCA = errors.New("ca: the data directory holds a different CA")

// ErrNextConflict: ImportKeys found this node's next issuing CA
// (DATA/ca/next) in the way of the export's, which has another one or
// none; nothing was imported. The caller may know why (a next CA
// discarded on another node, whose copy is left here).
var ErrNextConflict = errors.New("ca: this node's next issuing CA is not the export's")

// nextConflict is an import error about DATA/ca/next: its text unchanged,
// it is ErrNextConflict.
type nextConflict struct{ error }

func (e nextConflict) Is(target error) bool { return target == ErrNextConflict }
func (e nextConflict) Unwrap() error        { return e.error }

// KeyExport is the content of a key export.
type KeyExport struct {
	Format string `json:"format"`
	// Root is the root certificate's fingerprint (see Fingerprint).
	Root  string         `json:"root"`
	Files []ExportedFile `json:"files"`
}

// ExportedFile is one file of a KeyExport: its slash-separated path
// inside the data directory ("ca/issuing.key", "ca/next/ra.crt"), its mode
// and content, and whether it is a key (written through keys.Dir).
type ExportedFile struct {
	Path string      `json:"path"`
	Mode fs.FileMode `json:"mode"`
	Key  bool        `json:"key,omitempty"`
	Data []byte      `json:"data"`
}

// ExportKeysOptions choose what ExportKeys takes.
type ExportKeysOptions struct {
	// IncludeRoot takes dir/ca/root.key too (as it is: encrypted or not),
	// when it is there.
	IncludeRoot bool
	// ExtraDirs are other directories of dir (slash-separated, relative)
	// whose files go into the export too, *.key files as keys: the OCSP
	// responders' ("ocsp"). A missing one is skipped.
	ExtraDirs []string
}

// ExportKeys collects the key material and certificates of the CA in dir.
// A key in a PKCS#11 token is refused with an error wrapping
// keys.ErrNotExportable. ErrNoCA when there is no CA.
func ExportKeys(dir string, opts ExportKeysOptions) (*KeyExport, error) {
	caDir := filepath.Join(dir, "ca")
	root, err := loadCert(caDir, RootCertFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s)", ErrNoCA, caDir)
	}
	if err != nil {
		return nil, err
	}
	e := &KeyExport{Format: KeyExportFormat, Root: Fingerprint(root)}
	skip := func(rel string) bool { return rel == "ca/"+RootKeyFile && !opts.IncludeRoot }
	if err := e.addTree(dir, "ca", skip); err != nil {
		return nil, err
	}
	for _, x := range opts.ExtraDirs {
		if err := checkExportPath(x); err != nil || x == "ca" || strings.HasPrefix(x, "ca/") {
			return nil, fmt.Errorf("ca: export: %q is not a directory of the data directory to export", x)
		}
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(x))); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := e.addTree(dir, x, func(string) bool { return false }); err != nil {
			return nil, err
		}
	}
	if err := e.checkPairs(); err != nil {
		e.Clear()
		return nil, fmt.Errorf("ca: export: %w", err)
	}
	if !opts.IncludeRoot {
		if err := e.checkNoRootKey(root); err != nil {
			e.Clear()
			return nil, fmt.Errorf("ca: export: %w", err)
		}
	}
	return e, nil
}

// holdsPrivateKey: data has a PEM block of a private key, encrypted or not.
func holdsPrivateKey(data []byte) bool {
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			return false
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			return true
		}
		data = rest
	}
}

// checkNoRootKey refuses an export that would carry the root key under
// another name (a copy `ca root export --out` left inside the data
// directory): an export without --include-root promises not to hold it. An
// encrypted key other than root.key cannot be told apart from such a copy
// (only a root key is kept encrypted), so it is refused too.
func (e *KeyExport) checkNoRootKey(root *x509.Certificate) error {
	for _, f := range e.Files {
		if !f.Key {
			if holdsPrivateKey(f.Data) {
				// Whatever its name (root-backup.pem, root.key.orig): a
				// private key outside the key files is no part of a CA
				// generation, and may be the root's.
				return fmt.Errorf("%s holds a private key, though it is no key file: move it out of the data directory, or export with --include-root", f.Path)
			}
			continue
		}
		key, err := keys.ParseKeyPEM(f.Data)
		switch {
		case errors.Is(err, keys.ErrEncryptedKey):
			return fmt.Errorf("%s is an encrypted key, as only a root key taken offline is: move it out of the data directory, or export with --include-root", f.Path)
		case err != nil:
			return fmt.Errorf("%s: %w", f.Path, err)
		case pki.SamePublicKey(key.Public(), root.PublicKey):
			return fmt.Errorf("%s holds the root key: move it out of the data directory, or export with --include-root", f.Path)
		}
	}
	return nil
}

// checkPairs refuses an export whose CA key file does not hold the key of
// the certificate beside it (ca/issuing.key and ca/issuing.crt, say): a
// node that imported it would not start. An encrypted key (the root's, taken
// offline encrypted) is not read.
func (e *KeyExport) checkPairs() error {
	certs := map[string][]byte{}
	for _, f := range e.Files {
		if stem, ok := strings.CutSuffix(f.Path, ".crt"); ok {
			certs[stem] = f.Data
		}
	}
	for _, f := range e.Files {
		stem, ok := strings.CutSuffix(f.Path, keys.KeyFileExt)
		// The CA's own pairs only: the OCSP responders keep two keys in
		// turn beside one certificate.
		if !ok || !f.Key || certs[stem] == nil || !strings.HasPrefix(f.Path, "ca/") {
			continue
		}
		key, err := keys.ParseKeyPEM(f.Data)
		if errors.Is(err, keys.ErrEncryptedKey) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		cs, err := keys.ParseCertsPEM(certs[stem])
		if err != nil || len(cs) == 0 {
			return fmt.Errorf("%s.crt: %v", stem, err)
		}
		if !pki.SamePublicKey(key.Public(), cs[0].PublicKey) {
			return fmt.Errorf("%s does not hold the key of %s.crt", f.Path, stem)
		}
	}
	return nil
}

// addTree adds the files under dir/rel, leaving out names that start with
// a dot (temporary files and directories of an interrupted write).
func (e *KeyExport) addTree(dir, rel string, skip func(string) bool) error {
	full := filepath.Join(dir, filepath.FromSlash(rel))
	entries, err := os.ReadDir(full)
	if err != nil {
		return fmt.Errorf("ca: export: %w", err)
	}
	for _, ent := range entries {
		name := ent.Name()
		p := rel + "/" + name
		switch {
		case strings.HasPrefix(name, "."), skip(p):
			continue
		case ent.IsDir():
			if err := e.addTree(dir, p, skip); err != nil {
				return err
			}
			continue
		case !ent.Type().IsRegular():
			return fmt.Errorf("ca: export: %s is not a regular file", filepath.Join(full, name))
		}
		if stem, ok := strings.CutSuffix(name, keys.RefFileExt); ok {
			// The error says which key, and why it cannot leave.
			_, err := (&keys.Dir{Path: full}).ExportPEM(stem)
			if err == nil {
				err = keys.ErrNotExportable
			}
			return fmt.Errorf("ca: export: %w", err)
		}
		if stem, ok := strings.CutSuffix(name, keys.KeyFileExt); ok {
			data, err := (&keys.Dir{Path: full}).ExportPEM(stem)
			if err != nil {
				return fmt.Errorf("ca: export: %w", err)
			}
			e.Files = append(e.Files, ExportedFile{Path: p, Mode: 0o600, Key: true, Data: data})
			continue
		}
		data, err := os.ReadFile(filepath.Join(full, name))
		if err != nil {
			return fmt.Errorf("ca: export: %w", err)
		}
		fi, err := ent.Info()
		if err != nil {
			return fmt.Errorf("ca: export: %w", err)
		}
		e.Files = append(e.Files, ExportedFile{Path: p, Mode: fi.Mode().Perm() & 0o644, Data: data})
	}
	return nil
}

// Keys lists the paths of the export's keys.
func (e *KeyExport) Keys() []string {
	var out []string
	for _, f := range e.Files {
		if f.Key {
			out = append(out, f.Path)
		}
	}
	return out
}

// DropRetiredRAs leaves out of e each retired RA (ca/retired-ra/SERIAL/)
// that dir does not hold and for whose certificate gone returns true, its
// key overwritten in memory: an RA the node destroyed (its certificate
// revoked, or expired) must not come back from an export made before.
// One dir holds is left to the import, which never removes a file. It
// returns the directories left out.
func (e *KeyExport) DropRetiredRAs(dir string, gone func(*x509.Certificate) bool) []string {
	prefix := "ca/" + RetiredRADir + "/"
	drop := map[string]bool{}
	for _, f := range e.Files {
		if !strings.HasPrefix(f.Path, prefix) || path.Base(f.Path) != RACertFile {
			continue
		}
		d := path.Dir(f.Path)
		if exists(filepath.Join(dir, filepath.FromSlash(d))) {
			continue
		}
		if certs, err := keys.ParseCertsPEM(f.Data); err == nil && len(certs) == 1 && gone(certs[0]) {
			drop[d] = true
		}
	}
	if len(drop) == 0 {
		return nil
	}
	e.Files = slices.DeleteFunc(e.Files, func(f ExportedFile) bool {
		if drop[path.Dir(f.Path)] {
			clear(f.Data)
			return true
		}
		return false
	})
	return slices.Sorted(maps.Keys(drop))
}

// DropRevokedResponders leaves out of e, in its directory rel of OCSP
// responders (ExportKeysOptions.ExtraDirs), each responder certificate
// for which revoked returns true and every key of rel that is its key,
// overwritten in memory: a node destroys a revoked responder's key once
// it has replaced it (ocsp.Delegates), and neither an export made before
// that nor one made before the server's next refresh must spread the key
// to other nodes. The import never removes a file: one the node holds
// stays. It returns the paths left out.
func (e *KeyExport) DropRevokedResponders(rel string, revoked func(*x509.Certificate) bool) []string {
	var pubs []crypto.PublicKey
	drop := map[string]bool{}
	for _, f := range e.Files {
		if f.Key || path.Dir(f.Path) != rel || path.Ext(f.Path) != ".crt" {
			continue
		}
		if certs, err := keys.ParseCertsPEM(f.Data); err == nil && len(certs) > 0 && revoked(certs[0]) {
			drop[f.Path] = true
			pubs = append(pubs, certs[0].PublicKey)
		}
	}
	if len(drop) == 0 {
		return nil
	}
	for _, f := range e.Files {
		if !f.Key || path.Dir(f.Path) != rel {
			continue
		}
		key, err := keys.ParseKeyPEM(f.Data)
		if err != nil {
			continue
		}
		if slices.ContainsFunc(pubs, func(p crypto.PublicKey) bool { return pki.SamePublicKey(key.Public(), p) }) {
			drop[f.Path] = true
		}
	}
	e.Files = slices.DeleteFunc(e.Files, func(f ExportedFile) bool {
		if drop[f.Path] {
			clear(f.Data)
			return true
		}
		return false
	})
	return slices.Sorted(maps.Keys(drop))
}

// Clear overwrites the key material held in memory.
func (e *KeyExport) Clear() {
	for _, f := range e.Files {
		if f.Key {
			clear(f.Data)
		}
	}
}

// Marshal encodes the export (JSON) for sealing.
func (e *KeyExport) Marshal() ([]byte, error) { return json.Marshal(e) }

// ParseKeyExport decodes what Marshal made and checks every path.
func ParseKeyExport(data []byte) (*KeyExport, error) {
	var e KeyExport
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("ca: key export: %w", err)
	}
	if e.Format != KeyExportFormat {
		return nil, fmt.Errorf("ca: key export: format %q, want %q", e.Format, KeyExportFormat)
	}
	seen := map[string]bool{}
	for _, f := range e.Files {
		if err := checkExportPath(f.Path); err != nil {
			return nil, err
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("ca: key export: %s appears twice", f.Path)
		}
		seen[f.Path] = true
		if strings.HasSuffix(f.Path, keys.KeyFileExt) != f.Key || strings.HasSuffix(f.Path, keys.RefFileExt) {
			return nil, fmt.Errorf("ca: key export: %s: not a key file, or a key that is not in a .key file", f.Path)
		}
	}
	return &e, nil
}

// checkExportPath accepts a clean, relative, slash-separated path whose
// parts do not start with a dot.
func checkExportPath(p string) error {
	if p == "" || path.Clean(p) != p || path.IsAbs(p) || strings.Contains(p, "\\") {
		return fmt.Errorf("ca: key export: bad path %q", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || strings.HasPrefix(part, ".") {
			return fmt.Errorf("ca: key export: bad path %q", p)
		}
	}
	return nil
}

// ImportResult says what ImportKeys did.
type ImportResult struct {
	Written   []string // paths written
	Unchanged []string // paths that already held the same content (or key)
	// Kept are files outside ca/ (the OCSP responders') that the node
	// has with other content: its own, left as they are.
	Kept []string
}

// ImportKeys writes the files of e into the data directory dir (created
// with mode 0700 when missing; keys 0600, certificates 0644).
//
//   - A data directory whose CA has another root is refused
//     (ErrDifferentCA), as is any file of e that exists with other
//     content, or a key that exists and is another key: nothing is written
//     then.
//   - An export of a later state of the same CA (a rollover switched on
//     the node exported from; see advances) brings the CA up to date: the
//     node's current generation, which the export holds in previous/<id>/,
//     is replaced as a promotion replaces it. One that would lose a
//     generation the node holds is refused.
//   - A file outside dir/ca (an OCSP responder's key or certificate, which
//     each node makes and replaces for itself) that the node has with
//     other content is kept as it is (ImportResult.Kept): the node's
//     responder signs for the same issuing CA.
//   - Importing the same export again changes nothing (idempotent).
//   - A CA directory that does not exist is built beside it and renamed
//     into place; so is a next/ or previous/<id>/ directory that is new,
//     so a running server never loads half of one. Other files are written
//     one by one, atomically, keys first and issuing.crt last.
//
// A running server of dir picks up a next CA imported this way on its
// periodic reload (Authority.Reload).
func ImportKeys(dir string, e *KeyExport) (ImportResult, error) {
	var res ImportResult
	var rootFile *ExportedFile
	for i := range e.Files {
		if e.Files[i].Path == "ca/"+RootCertFile {
			rootFile = &e.Files[i]
		}
	}
	if rootFile == nil {
		return res, errors.New("ca: key export: no ca/root.crt")
	}
	roots, err := keys.ParseCertsPEM(rootFile.Data)
	if err != nil || len(roots) != 1 {
		return res, fmt.Errorf("ca: key export: ca/root.crt: want one certificate (%v)", err)
	}
	if Fingerprint(roots[0]) != e.Root {
		return res, fmt.Errorf("ca: key export: ca/root.crt is %s, but the export is of %s", Fingerprint(roots[0]), e.Root)
	}
	caDir := filepath.Join(dir, "ca")
	if have, err := loadCert(caDir, RootCertFile); err == nil {
		if !have.Equal(roots[0]) {
			return res, fmt.Errorf("%w: %s is %s (%s), the export is of %s; import into an empty data directory", ErrDifferentCA,
				filepath.Join(caDir, RootCertFile), have.Subject, Fingerprint(have), e.Root)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return res, err
	} else if present, err := inspect(caDir); err != nil {
		return res, err
	} else if len(present) > 0 {
		return res, fmt.Errorf("%w: %s holds CA files but no %s", ErrDifferentCA, caDir, RootCertFile)
	}
	if err := e.checkPairs(); err != nil {
		return res, fmt.Errorf("ca: key export: %w", err)
	}
	// First every check, then every write.
	adv, err := e.advances(caDir)
	if err != nil {
		return res, err
	}
	renewed := false
	if adv == nil {
		if renewed, err = e.renewsRA(caDir); err != nil {
			return res, err
		}
	}
	var todo, newRA []ExportedFile
	for _, f := range e.Files {
		if renewed && (f.Path == "ca/"+RACertFile || f.Path == "ca/"+RAKeyFile) {
			newRA = append(newRA, f)
			continue
		}
		if adv != nil && isGenerationFile(f.Path) {
			continue // adv.current, installed last
		}
		same, err := sameAsOnDisk(dir, f)
		if err != nil && !strings.HasPrefix(f.Path, "ca/") && exists(filepath.Join(dir, filepath.FromSlash(f.Path))) {
			res.Kept = append(res.Kept, f.Path)
			continue
		}
		if err != nil {
			return res, err
		}
		if same {
			res.Unchanged = append(res.Unchanged, f.Path)
		} else {
			todo = append(todo, f)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, fmt.Errorf("ca: %w", err)
	}
	// Whole directories that are new are built aside and renamed in.
	groups := map[string][]ExportedFile{}
	var order []string
	for _, f := range todo {
		g := newDirOf(dir, f.Path)
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], f)
	}
	// The CA directory first (it holds the others), then previous/
	// generations, then next/ (a running server then finds its whole
	// history at once), then single files.
	rank := func(g string) int {
		switch {
		case g == "ca":
			return 0
		case strings.HasPrefix(g, "ca/"+PreviousDir+"/"):
			return 1
		case g == "ca/"+NextDir:
			return 2
		case g == "":
			return 4
		}
		return 3
	}
	slices.SortStableFunc(order, func(a, b string) int { return rank(a) - rank(b) })
	for _, g := range order {
		files := groups[g]
		sortForWrite(files)
		if g == "" {
			for _, f := range files {
				if err := writeImported(dir, f); err != nil {
					return res, err
				}
				res.Written = append(res.Written, f.Path)
			}
			continue
		}
		if err := importDir(dir, g, files); err != nil {
			return res, err
		}
		for _, f := range files {
			res.Written = append(res.Written, f.Path)
		}
	}
	// Last, once the generation it replaces is in previous/, the newer
	// current generation, as a promotion installs it.
	if adv != nil {
		if err := adv.install(caDir); err != nil {
			return res, err
		}
		for _, f := range adv.current {
			res.Written = append(res.Written, f.Path)
		}
	}
	// Last, once the RA it replaces is in retired-ra/ (it still decrypts
	// requests encrypted to it), the renewed RA, as RenewRA installs it.
	if len(newRA) > 0 {
		if err := importRenewedRA(caDir, newRA); err != nil {
			return res, err
		}
		for _, f := range newRA {
			res.Written = append(res.Written, f.Path)
		}
	}
	return res, nil
}

// advance is an import that brings a node up to date with a rollover it
// missed: the export is of the same CA, its current issuing CA is newer,
// and its previous/<id>/ holds what the node has as current.
type advance struct {
	// current are the export's files of its current generation (ca/NAME).
	current []ExportedFile
	// staleNext: the node's next/ holds the export's current issuing CA,
	// which the install makes current.
	staleNext bool
}

// isGenerationFile: p is a file of the current generation (ca/issuing.crt,
// ca/ra.key, …), which a newer generation replaces.
func isGenerationFile(p string) bool {
	name, ok := strings.CutPrefix(p, "ca/")
	if !ok {
		return false
	}
	for _, f := range generationFiles {
		if f.name == name {
			return true
		}
	}
	return false
}

// advances reports whether e moves the CA in caDir on to a newer current
// generation (nil when it does not: the files are then compared one by
// one). It refuses, with nothing written, an export that would lose what
// the node holds: a previous issuing CA, the RA in service, or a next CA
// that the export lacks.
func (e *KeyExport) advances(caDir string) (*advance, error) {
	have, err := loadCert(caDir, IssuingCertFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	files := map[string]ExportedFile{}
	for _, f := range e.Files {
		files[f.Path] = f
	}
	cert := func(p string) *x509.Certificate {
		f, ok := files[p]
		if !ok {
			return nil
		}
		cs, err := keys.ParseCertsPEM(f.Data)
		if err != nil || len(cs) != 1 {
			return nil
		}
		return cs[0]
	}
	cur := cert("ca/" + IssuingCertFile)
	kept := "ca/" + PreviousDir + "/" + issuerID(have) + "/"
	if cur == nil || cur.Equal(have) {
		return nil, nil
	}
	if prev := cert(kept + IssuingCertFile); prev == nil || !prev.Equal(have) {
		return nil, nil // not a later state of this node's CA
	}
	lose := func(what string) error {
		return fmt.Errorf("ca: importing: the export moves this CA on to the issuing CA %s, but lacks %s that this node holds (nothing was imported); export from a node that has every generation",
			cur.Subject.CommonName, what)
	}
	entries, err := os.ReadDir(filepath.Join(caDir, PreviousDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ca: %w", err)
	}
	for _, ent := range entries {
		if ent.IsDir() && !strings.HasPrefix(ent.Name(), ".") && cert("ca/"+PreviousDir+"/"+ent.Name()+"/"+IssuingCertFile) == nil {
			return nil, lose("the previous issuing CA " + filepath.Join(caDir, PreviousDir, ent.Name()))
		}
	}
	if ra, err := loadCert(caDir, RACertFile); err == nil {
		found := false
		for p := range files {
			if (p == kept+RACertFile || strings.HasPrefix(p, "ca/"+RetiredRADir+"/") && path.Base(p) == RACertFile) && cert(p) != nil && cert(p).Equal(ra) {
				found = true
			}
		}
		if !found {
			return nil, lose("the SCEP RA " + filepath.Join(caDir, RACertFile))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	adv := &advance{}
	if next, err := loadCert(filepath.Join(caDir, NextDir), IssuingCertFile); err == nil {
		switch {
		case next.Equal(cur):
			adv.staleNext = true
		case cert("ca/"+NextDir+"/"+IssuingCertFile) == nil:
			return nil, nextConflict{lose("the next issuing CA " + filepath.Join(caDir, NextDir))}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, f := range e.Files {
		if isGenerationFile(f.Path) {
			adv.current = append(adv.current, f)
		}
	}
	return adv, nil
}

// install writes the export's current generation over caDir's: built in a
// directory beside it, then copied in as a promotion does (keys first,
// issuing.crt last); a next/ that held it goes.
func (adv *advance) install(caDir string) error {
	tmp, err := os.MkdirTemp(caDir, ".import-current-*") // mode 0700
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, f := range adv.current {
		if err := writeImported(tmp, ExportedFile{Path: path.Base(f.Path), Mode: f.Mode, Key: f.Key, Data: f.Data}); err != nil {
			return err
		}
	}
	if err := installGeneration(tmp, caDir); err != nil {
		return fmt.Errorf("ca: importing the current issuing CA: %w", err)
	}
	syncDir(caDir)
	if adv.staleNext {
		id, err := randomID()
		if err != nil {
			return err
		}
		// As a promotion leaves it: the next load's cleanup finishes.
		done := filepath.Join(caDir, ".next-done-"+id)
		if err := os.Rename(filepath.Join(caDir, NextDir), done); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ca: %w", err)
		}
		syncDir(caDir)
		os.RemoveAll(done)
	}
	return nil
}

// renewsRA reports whether the export carries a renewal (RenewRA) of the
// SCEP RA in service in caDir: the export's ca/ra.crt is another
// certificate, and the one in caDir is among its retired RAs. ImportKeys
// then replaces ra.crt and ra.key, which it otherwise refuses to
// overwrite, so that a renewal made on one node reaches the others.
func (e *KeyExport) renewsRA(caDir string) (bool, error) {
	have, err := os.ReadFile(filepath.Join(caDir, RACertFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("ca: %w", err)
	}
	var exported, retired bool
	for _, f := range e.Files {
		switch {
		case f.Path == "ca/"+RACertFile:
			exported = !bytes.Equal(f.Data, have)
		case strings.HasPrefix(f.Path, "ca/"+RetiredRADir+"/") && path.Base(f.Path) == RACertFile:
			retired = retired || bytes.Equal(f.Data, have)
		}
	}
	return exported && retired, nil
}

// importRenewedRA writes the export's ca/ra.key and ca/ra.crt over the
// RA in service in caDir: built in a renewal's directory, then installed
// key first (a load that finds the key without its certificate finishes
// the job, see finishRARenewal).
func importRenewedRA(caDir string, files []ExportedFile) error {
	id, err := randomID()
	if err != nil {
		return err
	}
	tmp := filepath.Join(caDir, raNewPrefix+id)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, f := range files {
		if err := writeImported(tmp, ExportedFile{Path: path.Base(f.Path), Mode: f.Mode, Key: f.Key, Data: f.Data}); err != nil {
			return err
		}
	}
	return installRA(tmp, caDir)
}

// newDirOf is the outermost directory of p that does not exist yet in
// dir, if it is one ImportKeys builds aside (ca, ca/next, ca/previous/<id>
// or an extra directory); "" when the file goes into an existing one.
func newDirOf(dir, p string) string {
	parts := strings.Split(p, "/")
	for i := 1; i < len(parts); i++ {
		d := strings.Join(parts[:i], "/")
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(d))); errors.Is(err, fs.ErrNotExist) {
			if d == "ca/"+PreviousDir {
				// previous/ itself: each generation is renamed in alone.
				if err := os.MkdirAll(filepath.Join(dir, "ca", PreviousDir), 0o700); err != nil {
					return d
				}
				continue
			}
			return d
		}
	}
	return ""
}

// sortForWrite orders files keys first and issuing.crt last, as a
// promotion writes them.
func sortForWrite(files []ExportedFile) {
	w := func(f ExportedFile) int {
		switch {
		case f.Key:
			return 0
		case path.Base(f.Path) == IssuingCertFile:
			return 2
		}
		return 1
	}
	slices.SortStableFunc(files, func(a, b ExportedFile) int { return w(a) - w(b) })
}

// importDir builds the directory rel of dir from files in a temporary
// directory beside it, then renames it into place.
func importDir(dir, rel string, files []ExportedFile) error {
	target := filepath.Join(dir, filepath.FromSlash(rel))
	parent := filepath.Dir(target)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".import-*") // mode 0700
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, f := range files {
		inner := strings.TrimPrefix(f.Path, rel+"/")
		g := ExportedFile{Path: inner, Mode: f.Mode, Key: f.Key, Data: f.Data}
		if err := writeImported(tmp, g); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		return fmt.Errorf("ca: importing %s: %w", target, err)
	}
	syncDir(parent)
	return nil
}

// writeImported writes one file of an export under dir: a key through
// keys.Dir, anything else atomically with its mode (at most 0644).
func writeImported(dir string, f ExportedFile) error {
	full := filepath.Join(dir, filepath.FromSlash(f.Path))
	if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if f.Key {
		stem := strings.TrimSuffix(filepath.Base(full), keys.KeyFileExt)
		if _, err := (&keys.Dir{Path: filepath.Dir(full)}).ImportPEM(stem, f.Data); err != nil {
			return fmt.Errorf("ca: importing %s: %w", f.Path, err)
		}
		return nil
	}
	if err := keys.WriteFileAtomic(full, f.Data, f.Mode.Perm()&0o644); err != nil {
		return fmt.Errorf("ca: importing %s: %w", f.Path, err)
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// sameAsOnDisk reports whether f is already in dir; an error when
// something else is there.
func sameAsOnDisk(dir string, f ExportedFile) (bool, error) {
	full := filepath.Join(dir, filepath.FromSlash(f.Path))
	if f.Key {
		stem := strings.TrimSuffix(filepath.Base(full), keys.KeyFileExt)
		exists, err := (&keys.Dir{Path: filepath.Dir(full)}).CheckImportPEM(stem, f.Data)
		if err != nil {
			err = fmt.Errorf("ca: importing %s: %w (nothing was imported)", f.Path, err)
			if errors.Is(err, keys.ErrKeyExists) && strings.HasPrefix(f.Path, "ca/"+NextDir+"/") {
				err = nextConflict{err}
			}
			return false, err
		}
		return exists, nil
	}
	have, err := os.ReadFile(full)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("ca: %w", err)
	}
	if !bytes.Equal(have, f.Data) {
		if strings.HasPrefix(f.Path, "ca/") {
			// Not a later state of this node's CA (see advances): only
			// the operator can say the node's own is to go.
			err := fmt.Errorf("ca: importing %s: %s exists with other content (nothing was imported): the export is not a later state of this node's CA; to replace this node's CA with the export's, stop the server, move %s aside, then import again",
				f.Path, full, filepath.Join(dir, "ca"))
			if strings.HasPrefix(f.Path, "ca/"+NextDir+"/") {
				return false, nextConflict{err}
			}
			return false, err
		}
		return false, fmt.Errorf("ca: importing %s: %s exists with other content (nothing was imported); import into an empty data directory, or move it away first", f.Path, full)
	}
	return true, nil
}
