# shellcheck shell=bash
# write_section NAME SECTION_FILE OUT: puts SECTION_FILE (which begins with
# <!-- NAME --> and ends with <!-- /NAME -->) into OUT in place of the
# section of that name, or at its end when it has none. scripts/bench keeps
# such sections of BENCHMARKS.md when it rewrites the rest.
write_section() {
	local name=$1 section=$2 out=$3 tmp
	if [ -f "$out" ] && grep -qF "<!-- $name -->" "$out"; then
		tmp=$(mktemp "${out}.XXXXXX")
		awk -v f="$section" -v b="<!-- $name -->" -v e="<!-- /$name -->" '
			$0 == b {while ((getline l < f) > 0) print l; skip=1; next}
			$0 == e {skip=0; next}
			!skip {print}' "$out" >"$tmp"
		mv "$tmp" "$out"
	else
		{
			echo
			cat "$section"
		} >>"$out"
	fi
}
