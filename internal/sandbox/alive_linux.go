package sandbox

import (
	"os"
	"strconv"
	"strings"
)

// procStat reads /proc/PID/stat: the process's state letter and its start
// time (clock ticks after boot), which tells a pid used again apart.
func procStat(pid int) (state, start string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", "", false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and parentheses
	if i < 0 {
		return "", "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", "", false
	}
	return f[0], f[19], true
}

// alive reports whether pid is a live process (not a zombie nobody has
// reaped yet) started at start ("" matches any).
func alive(pid int, start string) bool {
	if pid <= 0 {
		return false
	}
	st, s, ok := procStat(pid)
	return ok && st != "Z" && st != "X" && (start == "" || s == start)
}

// processStart is pid's start time, "" when it is gone.
func processStart(pid int) string {
	_, s, _ := procStat(pid)
	return s
}
