#!/bin/sh
# build.sh PACKAGE -- pretend to build one pkgsrc package (the paexec slides' example).
# Prints "build PACKAGE" and succeeds, except for devel/gmake, which always fails, so that
# every package depending on it (directly or not) must not be built.
pkg=${1:?usage: build.sh PACKAGE}
echo "build $pkg"
if [ "$pkg" = devel/gmake ]; then
    echo "build.sh: $pkg: configure failed (on purpose, for the example)" >&2
    exit 1
fi
exit 0
