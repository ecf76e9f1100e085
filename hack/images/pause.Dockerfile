# The pod sandbox image, as k8s.io/kubernetes build/pause/Dockerfile makes it; hack/images.sh
# compiles linux/pause.c statically with gcc and puts the binary next to this file.
FROM scratch
ADD pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
