package main

// SECURITY.md's threat table is a map into the code: each row names where its defence lives (file.go:function) and
// the tests that prove it. TestSecurityMapIsCurrent keeps the map true as the code moves.

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// securityDecls returns, for each Go file matching pattern, the functions it declares ("name", and "Type.name" for a
// method), and every string literal in it.
func securityDecls(t *testing.T, pattern string) (map[string]map[string]bool, map[string]bool) {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files match %s: %v", pattern, err)
	}
	decls, literals := map[string]map[string]bool{}, map[string]bool{}
	fset := token.NewFileSet()
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		decls[file] = map[string]bool{}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			if fd.Recv == nil {
				decls[file][fd.Name.Name] = true
				continue
			}
			recv := fd.Recv.List[0].Type
			if star, ok := recv.(*ast.StarExpr); ok {
				recv = star.X
			}
			if id, ok := recv.(*ast.Ident); ok {
				decls[file][id.Name+"."+fd.Name.Name] = true
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					literals[s] = true
				}
			}
			return true
		})
	}
	return decls, literals
}

// securityTests returns the test and fuzz functions among decls of _test.go files.
func securityTests(decls map[string]map[string]bool) map[string]bool {
	tests := map[string]bool{}
	for file, names := range decls {
		if !strings.HasSuffix(file, "_test.go") {
			continue
		}
		for name := range names {
			if regexp.MustCompile(`^(Test|Fuzz)[A-Z0-9_]`).MatchString(name) && !strings.Contains(name, ".") {
				tests[name] = true
			}
		}
	}
	return tests
}

// TestSecurityMapIsCurrent reads the threat table of SECURITY.md and checks that: every row has five cells, an id in
// sequence, at least one place and one proof; every place is file.go:function (or file.go:Type.method) declared in
// that non-test file; every proof is a test or fuzz function of this package or of e2e/ (a subtest TestX/sub must be
// a case of the table for TestHostileRequests, or else a name written in the tests), or a file of the repository;
// and that every Fuzz* and TestHostile* function of the package is cited somewhere.
func TestSecurityMapIsCurrent(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	decls, literals := securityDecls(t, "*.go")
	e2eDecls, e2eLiterals := securityDecls(t, filepath.Join("e2e", "*_test.go"))
	tests, e2eTests := securityTests(decls), securityTests(e2eDecls)
	for s := range e2eLiterals {
		literals[s] = true
	}
	cases := map[string]bool{}
	for _, c := range hostileRequestCases() {
		cases[c.name] = true
	}

	ticked := regexp.MustCompile("`([^`]+)`")
	place := regexp.MustCompile(`^([a-z_]+\.go):([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)$`)
	proof := regexp.MustCompile(`^((?:Test|Fuzz)[A-Za-z0-9_]*)(?:/(.+))?$`)
	row := regexp.MustCompile(`^\| (T\d+) \|`)
	cited := map[string]bool{}
	rows := 0
	for _, line := range strings.Split(string(doc), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		rows++
		id := m[1]
		if id != "T"+strconv.Itoa(rows) {
			t.Errorf("row %d is %s: the ids must run T1, T2, … without a gap or a repeat", rows, id)
		}
		cells := strings.Split(line, "|")
		if len(cells) != 7 || strings.TrimSpace(cells[2]) == "" || strings.TrimSpace(cells[3]) == "" {
			t.Errorf("%s: %d cells, want 5, each threat and defence written", id, len(cells)-2)
			continue
		}
		places, proofs := ticked.FindAllStringSubmatch(cells[4], -1), ticked.FindAllStringSubmatch(cells[5], -1)
		if len(places) == 0 || len(proofs) == 0 {
			t.Errorf("%s: names no function or no test", id)
		}
		for _, p := range places {
			loc := place.FindStringSubmatch(p[1])
			switch {
			case loc == nil:
				t.Errorf("%s: %q is not file.go:function", id, p[1])
			case strings.HasSuffix(loc[1], "_test.go"):
				t.Errorf("%s: %s is a test file: a defence lives in the service", id, loc[1])
			case decls[loc[1]] == nil:
				t.Errorf("%s: no file %s", id, loc[1])
			case !decls[loc[1]][loc[2]]:
				t.Errorf("%s: %s does not declare %s", id, loc[1], loc[2])
			}
		}
		for _, p := range proofs {
			name := p[1]
			pm := proof.FindStringSubmatch(name)
			if pm == nil {
				if _, err := os.Stat(name); err != nil || !strings.Contains(name, "/") {
					t.Errorf("%s: %q is neither a test nor a file of the repository", id, name)
				}
				continue
			}
			fn, sub := pm[1], pm[2]
			cited[fn] = true
			switch {
			case !tests[fn] && !e2eTests[fn]:
				t.Errorf("%s: no test %s, here or in e2e/", id, fn)
			case sub != "" && fn == "TestHostileRequests" && !cases[sub]:
				t.Errorf("%s: TestHostileRequests has no case %q", id, sub)
			case sub != "" && fn != "TestHostileRequests" && !literals[sub] && !literals[strings.ReplaceAll(sub, "_", " ")]:
				t.Errorf("%s: %s has no subtest %q that the tests name", id, fn, sub)
			}
		}
	}
	if rows < 38 {
		t.Fatalf("found %d threat rows in SECURITY.md, want T1 to T38 at least; is the table still there?", rows)
	}
	for name := range tests {
		if (strings.HasPrefix(name, "Fuzz") || strings.HasPrefix(name, "TestHostile")) && !cited[name] {
			t.Errorf("SECURITY.md does not cite %s", name)
		}
	}
}
