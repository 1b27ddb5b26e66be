// Command testprog is the small program the drivers' conformance suite
// runs under every driver: as a local process, and built with
// CGO_ENABLED=0 into a FROM-scratch image for the docker driver. Its first
// argument picks what it does:
//
//	exit N   write "bye" to stderr and exit with status N
//	term     print "ready", exit 0 on SIGTERM (after "got SIGTERM" on stderr)
//	ignore   ignore SIGTERM, print "ready", sleep until killed
//	echo     copy stdin lines to stdout as "echo:LINE"; "stdin closed" on stderr at EOF
//	lines N  write "line 1".."line N" to stderr, exit 0
//	env      write "env=$FLOWCTL_TESTPROG_VALUE" to stderr, exit 0
//
// It must stay standard-library only, with no cgo, so it runs in an empty
// image.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// maxSleep bounds the modes that wait to be stopped, so that a test that
// fails to stop one leaves nothing running for long.
const maxSleep = 10 * time.Minute

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testprog exit N|term|ignore|echo|lines N|env")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "exit":
		fmt.Fprintln(os.Stderr, "bye")
		os.Exit(number())
	case "term":
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		fmt.Println("ready")
		select {
		case <-ch:
			fmt.Fprintln(os.Stderr, "got SIGTERM")
		case <-time.After(maxSleep):
			os.Exit(1)
		}
	case "ignore":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(maxSleep)
		os.Exit(1)
	case "echo":
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			fmt.Println("echo:" + sc.Text())
		}
		fmt.Fprintln(os.Stderr, "stdin closed")
	case "lines":
		for i := 1; i <= number(); i++ {
			fmt.Fprintf(os.Stderr, "line %d\n", i)
		}
	case "env":
		fmt.Fprintf(os.Stderr, "env=%s\n", os.Getenv("FLOWCTL_TESTPROG_VALUE"))
	default:
		fmt.Fprintf(os.Stderr, "testprog: unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
}

func number() int {
	if len(os.Args) < 3 {
		fmt.Fprintf(os.Stderr, "testprog: mode %s needs a number\n", os.Args[1])
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "testprog: %v\n", err)
		os.Exit(2)
	}
	return n
}
