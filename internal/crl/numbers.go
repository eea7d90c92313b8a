package crl

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/scepter/scepter/internal/keys"
)

// NumbersDir is the directory of the data directory that keeps, per
// issuer, the highest CRL number this node has published.
const NumbersDir = "crl-numbers"

// MaxNumber is the highest CRL number taken: far above any real count (a
// CRL a second for a hundred billion years), yet far enough below the
// int64 limit that the next number cannot wrap round. A mark above it is
// a damaged or mistyped file, not a number this node published.
const MaxNumber int64 = 1 << 62

// nextNumber is the CRL number after the highest of numbers, refused above
// MaxNumber rather than wrapped round to a negative one.
func nextNumber(numbers ...int64) (int64, error) {
	highest := int64(0)
	for _, n := range numbers {
		highest = max(highest, n)
	}
	if highest >= MaxNumber {
		return 0, fmt.Errorf("crl: no CRL number follows %d: numbers end at %d", highest, MaxNumber)
	}
	return highest + 1, nil
}

// Numbers keeps, per issuer, the highest CRL number this node has
// published, outside the store: a store restored from an older copy holds
// older CRLs, and numbering from them would publish numbers relying
// parties have seen already with other entries (RFC 5280 §5.2.3 forbids
// it). One file per issuer, DIR/ISSUER-ID, holds the number in decimal.
// Not safe for concurrent use; the Publisher serialises its updates.
type Numbers struct {
	dir string
}

// NewNumbers keeps the numbers in dir (DATA/crl-numbers), which is made
// at the first write.
func NewNumbers(dir string) *Numbers { return &Numbers{dir: dir} }

// Dir is where the numbers are kept.
func (n *Numbers) Dir() string { return n.dir }

// Get returns the highest CRL number recorded for an issuer; 0 when none.
func (n *Numbers) Get(issuerID string) (int64, error) {
	path, err := n.path(issuerID)
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("crl: the highest CRL number published: %w", err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("crl: %s holds %q, not a CRL number: write the highest CRL number this CA published there (a decimal number)", path, strings.TrimSpace(string(b)))
	}
	if v > MaxNumber {
		return 0, fmt.Errorf("crl: %s holds %d, above any CRL number this CA can have published (at most %d): "+
			"write the highest CRL number this CA published there (the number of its newest CRL, as 'openssl crl -noout -crlnumber' prints it, in decimal)", path, v, MaxNumber)
	}
	return v, nil
}

// Put records number as an issuer's highest, durably (a new file synced
// and renamed into place, the directory synced), before the CRL is
// served.
func (n *Numbers) Put(issuerID string, number int64) error {
	path, err := n.path(issuerID)
	if err != nil {
		return err
	}
	if err := keys.WriteFileAtomic(path, []byte(strconv.FormatInt(number, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("crl: recording CRL number %d: %w", number, err)
	}
	return nil
}

// path is the issuer's file; an issuer ID is a hex SHA-256, so nothing
// else can name a file elsewhere.
func (n *Numbers) path(issuerID string) (string, error) {
	if b, err := hex.DecodeString(issuerID); err != nil || len(b) != 32 || strings.ToLower(issuerID) != issuerID {
		return "", fmt.Errorf("crl: issuer ID %q is not a lower-case hex SHA-256", issuerID)
	}
	return filepath.Join(n.dir, issuerID), nil
}
