package translate

import "fmt"

// Dockerfile names the file that builds flowctl's own image.
const Dockerfile = "Dockerfile"

// dockerfileFiles are a Dockerfile for flowctl's image and the
// nsswitch.conf it copies: FROM scratch, the static binary and nothing
// else. Without nsswitch.conf Go's resolver asks DNS before /etc/hosts.
func dockerfileFiles(image string) []File {
	df := fmt.Sprintf(`# flowctl's own image: the static binary and nothing else. Build it next to
# the Compose file, from a flowctl binary built without cgo:
#
#   CGO_ENABLED=0 GOOS=linux go build -o flowctl ./cmd/flowctl
#   docker build -t %s .
#
# Every service of the Compose file runs it as `+"`/flowctl node ...`"+`; its health
# check is `+"`/flowctl health URL`"+`, so the image needs no shell, wget or curl.
FROM scratch
COPY flowctl /flowctl
COPY nsswitch.conf /etc/nsswitch.conf
ENTRYPOINT ["/flowctl"]
`, image)
	return []File{
		{Name: Dockerfile, Data: []byte(df)},
		{Name: "nsswitch.conf", Data: []byte("hosts: files dns\n")},
	}
}
