package main

import (
	"strings"

	"github.com/scepter/scepter/internal/client"
)

// printable is how the CLI shows a value it did not write itself: a
// subject or a name from the store (a refused CSR's subject is stored as
// the unauthenticated requester sent it), a reason, what a server sent.
// C0 and C1 controls, DEL, invalid UTF-8 and the Unicode bidi controls
// come out escaped (\x1b, \u009b, \u202e, \xff), so no such value can
// clear or recolour the operator's terminal, add a row to a table or
// reorder what it shows. Newlines and tabs are escaped too: a value stays
// in its row and its column. One rule for the whole tree: the client's.
func printable(s string) string {
	return client.Printable(s)
}

// printableLines is printable for a message of several lines (an error
// with a hint below it, or a driver's list of addresses tried, each on a
// line indented by a tab): each line is escaped, the line breaks and the
// tabs that indent a line stay (a tab inside a line could still move a
// value out of its column).
func printableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		rest := strings.TrimLeft(l, "\t")
		lines[i] = l[:len(l)-len(rest)] + printable(rest)
	}
	return strings.Join(lines, "\n")
}

// maxTableCell bounds a cell of a table that is not its last column: a
// subject a client sent (up to 2,048 bytes, of which the trail keeps about
// 1,000 characters) would otherwise pad that column, in every row, to its
// width.
const maxTableCell = 80

// tableCell is printable(s) cut to maxTableCell characters, ending in "…"
// when cut, and whether it was.
func tableCell(s string) (string, bool) {
	p := []rune(printable(s))
	if len(p) <= maxTableCell {
		return string(p), false
	}
	return string(p[:maxTableCell-1]) + "…", true
}
