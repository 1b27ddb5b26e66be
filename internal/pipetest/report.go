package pipetest

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// TextReporter prints results in the style of go test: with Verbose,
// "=== RUN" as a case starts and "--- PASS" as it passes; always "--- FAIL"
// with the reasons indented, then per file "ok  FILE 0.12s" or "FAIL".
type TextReporter struct {
	W       io.Writer
	Verbose bool
}

// Start is called as a case starts.
func (r *TextReporter) Start(name string) {
	if r.Verbose {
		fmt.Fprintf(r.W, "=== RUN   %s\n", name)
	}
}

// Case is called as a case ends.
func (r *TextReporter) Case(c CaseResult) {
	if c.Passed {
		if r.Verbose {
			fmt.Fprintf(r.W, "--- PASS: %s (%s)\n", c.Name, secs(c.Elapsed))
		}
		return
	}
	fmt.Fprintf(r.W, "--- FAIL: %s (%s)\n", c.Name, secs(c.Elapsed))
	for _, l := range c.Failures {
		for _, ll := range strings.Split(l, "\n") {
			fmt.Fprintf(r.W, "    %s\n", ll)
		}
	}
	if out := strings.TrimRight(c.Output, "\n"); out != "" {
		fmt.Fprintln(r.W, "    output:")
		for _, l := range strings.Split(out, "\n") {
			fmt.Fprintf(r.W, "        %s\n", l)
		}
	}
}

// File is called once a file's cases ran.
func (r *TextReporter) File(f FileResult) {
	switch {
	case f.Err != nil:
		fmt.Fprintf(r.W, "%v\n", f.Err)
		fmt.Fprintf(r.W, "FAIL\t%s [setup failed]\n", f.Path)
	case f.Failed():
		fmt.Fprintln(r.W, "FAIL")
		fmt.Fprintf(r.W, "FAIL\t%s\t%s\n", f.Path, secs(f.Elapsed))
	case len(f.Cases) == 0:
		fmt.Fprintf(r.W, "ok  \t%s\t%s [no tests to run]\n", f.Path, secs(f.Elapsed))
	default:
		if r.Verbose {
			fmt.Fprintln(r.W, "PASS")
		}
		fmt.Fprintf(r.W, "ok  \t%s\t%s\n", f.Path, secs(f.Elapsed))
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// JUnit XML, as CI systems read it.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes results as JUnit XML: a testsuite per file, a
// testcase per case; a file that could not be read is a suite with one
// errored case.
func WriteJUnit(w io.Writer, results []FileResult) error {
	var all junitSuites
	var total time.Duration
	for _, f := range results {
		s := junitSuite{Name: f.Path, Time: fmt.Sprintf("%.3f", f.Elapsed.Seconds())}
		total += f.Elapsed
		if f.Err != nil {
			s.Tests, s.Errors = 1, 1
			s.Cases = append(s.Cases, junitCase{Name: "(load)", Classname: f.Path, Time: "0.000",
				Error: &junitMessage{Message: firstLine(f.Err.Error()), Type: "error", Body: f.Err.Error()}})
		}
		for _, c := range f.Cases {
			jc := junitCase{Name: c.Name, Classname: f.Path, Time: fmt.Sprintf("%.3f", c.Elapsed.Seconds())}
			s.Tests++
			if !c.Passed {
				s.Failures++
				msg := ""
				if len(c.Failures) > 0 {
					msg = firstLine(c.Failures[0])
				}
				jc.Failure = &junitMessage{Message: msg, Type: "failure", Body: strings.Join(c.Failures, "\n")}
				jc.SystemOut = c.Output
			}
			s.Cases = append(s.Cases, jc)
		}
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Errors += s.Errors
		all.Suites = append(all.Suites, s)
	}
	all.Time = fmt.Sprintf("%.3f", total.Seconds())
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
