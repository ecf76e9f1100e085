// kstatus reads one Kubernetes object as JSON on stdin and prints, as one JSON line, the
// status that sigs.k8s.io/cli-utils/pkg/kstatus/status computes for it: what Flux and
// `kubectl wait`-like tools built on kstatus decide from that object alone.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	// Decoded as client-go decodes objects: integers stay int64, which kstatus expects.
	object := &unstructured.Unstructured{}
	if err := object.UnmarshalJSON(raw); err != nil {
		fail("stdin is not one Kubernetes object as JSON: %v", err)
	}
	computed, err := status.Compute(object)
	if err != nil {
		fail("kstatus: %v", err)
	}
	out, err := json.Marshal(result{Status: computed.Status.String(), Message: computed.Message})
	if err != nil {
		fail("encoding the result: %v", err)
	}
	fmt.Println(string(out))
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}
