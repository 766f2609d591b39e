#!/usr/bin/env bash
# Builds the dependency bundle: a self-contained folder of static libraries and headers holding
# everything LibReID needs besides LibTorch, for machines that have a LibTorch (a GPU machine's
# Python PyTorch) and a compiler but no package manager. See docs/gpu.md.
#
#   scripts/bundle_deps.sh [OUTPUT]        default OUTPUT: deps-bundle/ (ignored by git)
#
# What goes in, each built from Debian 12's own source package (deb-src, fetched with a private
# apt list so the machine's sources are left alone), at the version the upstream pins below name:
#   zlib, libpng, libjpeg-turbo      static, position-independent (libreid is a shared library)
#   OpenCV core + imgproc + imgcodecs    JPEG/PNG (+ the built-in BMP/PNM/HDR) codecs only:
#                                    no GUI, video, GDAL, TIFF, WebP, OpenEXR, OpenCL or IPP
#   yaml-cpp (static), CLI11 (headers), GoogleTest + GoogleMock (static)
# ({fmt} comes with LibTorch's headers, which LibReID uses header-only.)
# matio is left out (CUHK03's .mat release is optional: the GPU build passes
# -DREID_WITH_MATIO=OFF) and so is Protobuf (the TensorBoard writer needs none).
# Everything is compiled with -D_GLIBCXX_USE_CXX11_ABI=1, the ABI of Debian's libtorch and of
# the official LibTorch 2.x / pip PyTorch builds from 2.7 on; scripts/gpu_build.sh checks that
# the LibTorch it is given agrees. The bundle must stay under 48 MiB (checked at the end).
#
# Environment: BUNDLE_WORK (scratch folder, default /tmp/reid-bundle-work; ~1.5 GB),
# BUNDLE_JOBS (parallel jobs, default nproc).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=$(realpath -m "${1:-deps-bundle}")
work=$(realpath -m "${BUNDLE_WORK:-/tmp/reid-bundle-work}")
jobs=${BUNDLE_JOBS:-$(nproc)}
limit_mib=48
start=$(date +%s)

# Upstream versions (Debian 12 "bookworm"); the newest Debian revision of each that the archive
# serves is taken, so that a security update (libpng's, say) does not break the script, and
# recorded in the bundle's VERSIONS file.
declare -A UPSTREAM=(
  [zlib]=1.2.13 [libpng1.6]=1.6.39 [libjpeg-turbo]=2.1.5 [opencv]=4.6.0
  [yaml-cpp]=0.7.0 [cli11]=2.1.2 [googletest]=1.12.1
)
ORDER=(zlib libpng1.6 libjpeg-turbo opencv yaml-cpp cli11 googletest)

need=()
for tool in cmake ninja dpkg-source nasm; do command -v "$tool" > /dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=()
  for tool in "${need[@]}"; do
    case $tool in ninja) pkgs+=(ninja-build) ;; dpkg-source) pkgs+=(dpkg-dev) ;; *) pkgs+=("$tool") ;; esac
  done
  echo "bundle: installing ${pkgs[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${pkgs[@]}" > /dev/null
fi

mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src" "$work/build"
cat > "$work/apt/sources.list" <<'EOF'
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian bookworm-updates main
deb-src http://deb.debian.org/debian-security bookworm-security main
EOF
APT=(-o Dir::Etc::SourceList="$work/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
     -o Dir::State::Lists="$work/apt/lists" -o Dir::Cache="$work/apt/cache" -o APT::Sandbox::User=root)
echo "bundle: reading Debian's source lists"
apt-get "${APT[@]}" update -qq

rm -rf "$out" && mkdir -p "$out"
: > "$out/VERSIONS"
declare -A SRC
for pkg in "${ORDER[@]}"; do
  # Newest first; a revision the list names but the archive no longer (or not yet) serves is
  # skipped for the next one.
  versions=$(apt-cache "${APT[@]}" showsrc "$pkg" | awk '/^Version:/ {print $2}' | sort -Vru)
  found=""
  for version in $versions; do
    upstream=${version#*:}; upstream=${upstream%%[+-]*}; upstream=${upstream%.dfsg}
    [ "$upstream" = "${UPSTREAM[$pkg]}" ] || continue
    dir="$work/src/$pkg-$version"
    if [ ! -d "$dir" ]; then
      echo "bundle: fetching $pkg $version"
      rm -rf "$work/src/fetch" && mkdir -p "$work/src/fetch"
      (cd "$work/src/fetch" && apt-get "${APT[@]}" source --download-only -qq "$pkg=$version" > /dev/null 2>&1) ||
        { echo "bundle: $pkg $version is not served, trying an older revision"; continue; }
      # Unpack the main tarball with Debian's patches applied (dpkg-source also unpacks any
      # component tarballs, such as OpenCV's contrib modules, which are not used).
      (cd "$work/src/fetch" && dpkg-source --no-check -x ./*.dsc "$dir" > /dev/null)
      rm -rf "$work/src/fetch"
    fi
    found=$version
    break
  done
  if [ -z "$found" ]; then
    echo "bundle: no source of $pkg ${UPSTREAM[$pkg]} (Debian has: $(echo $versions)); update UPSTREAM" >&2
    exit 1
  fi
  SRC[$pkg]=$dir
  echo "$pkg $found" >> "$out/VERSIONS"
done

flags="-O2 -fPIC -D_GLIBCXX_USE_CXX11_ABI=1"
CM=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$out" -DCMAKE_PREFIX_PATH="$out"
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_SHARED_LIBS=OFF -DCMAKE_INSTALL_LIBDIR=lib
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags")
if command -v ccache > /dev/null; then  # a second run (a changed option) is then quick
  CM+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
build() {  # build NAME SOURCE_SUBDIR [cmake options...]
  local name=$1 source=$2; shift 2
  local dir="$work/build/$name"
  echo "bundle: building $name"
  rm -rf "$dir"
  cmake -S "$source" -B "$dir" "${CM[@]}" "$@" > "$work/build/$name.configure.log" 2>&1 ||
    { tail -40 "$work/build/$name.configure.log"; exit 1; }
  cmake --build "$dir" --parallel "$jobs" > "$work/build/$name.build.log" 2>&1 ||
    { tail -40 "$work/build/$name.build.log"; exit 1; }
  cmake --install "$dir" > /dev/null
}

# zlib's own configure script builds the static library alone.
echo "bundle: building zlib"
rm -rf "$work/build/zlib" && cp -r "${SRC[zlib]}" "$work/build/zlib"
(cd "$work/build/zlib" && CFLAGS="$flags" ./configure --static --prefix="$out" --libdir="$out/lib" > /dev/null &&
  make -j"$jobs" libz.a > /dev/null && make install > /dev/null)
zlib=(-DZLIB_ROOT="$out" -DZLIB_INCLUDE_DIR="$out/include" -DZLIB_LIBRARY="$out/lib/libz.a")

build libpng "${SRC[libpng1.6]}" -DPNG_SHARED=OFF -DPNG_STATIC=ON -DPNG_TESTS=OFF \
  -DPNG_EXECUTABLES=OFF -DSKIP_INSTALL_PROGRAMS=ON -DSKIP_INSTALL_FILES=ON "${zlib[@]}"
# libjpeg-turbo resolves a relative CMAKE_INSTALL_LIBDIR against the wrong folder: give it whole.
build libjpeg-turbo "${SRC[libjpeg-turbo]}" -DENABLE_SHARED=OFF -DENABLE_STATIC=ON \
  -DWITH_TURBOJPEG=OFF -DREQUIRE_SIMD=ON -DCMAKE_INSTALL_LIBDIR="$out/lib"

build opencv "${SRC[opencv]}" -DBUILD_LIST=core,imgproc,imgcodecs \
  -DBUILD_TESTS=OFF -DBUILD_PERF_TESTS=OFF -DBUILD_EXAMPLES=OFF -DBUILD_opencv_apps=OFF \
  -DBUILD_DOCS=OFF -DBUILD_JAVA=OFF -DBUILD_opencv_python3=OFF -DBUILD_opencv_python2=OFF \
  -DBUILD_ZLIB=OFF -DBUILD_PNG=OFF -DBUILD_JPEG=OFF -DBUILD_TIFF=OFF -DBUILD_WEBP=OFF \
  -DWITH_JPEG=ON -DWITH_PNG=ON -DWITH_TIFF=OFF -DWITH_WEBP=OFF -DWITH_OPENEXR=OFF \
  -DWITH_OPENJPEG=OFF -DWITH_JASPER=OFF -DWITH_GDAL=OFF -DWITH_GDCM=OFF -DWITH_IMGCODEC_HDR=ON \
  -DWITH_GTK=OFF -DWITH_QT=OFF -DWITH_VTK=OFF -DWITH_OPENGL=OFF -DWITH_FFMPEG=OFF \
  -DWITH_GSTREAMER=OFF -DWITH_V4L=OFF -DWITH_1394=OFF -DWITH_VA=OFF -DWITH_VA_INTEL=OFF \
  -DWITH_OPENCL=OFF -DWITH_IPP=OFF -DWITH_ITT=OFF -DWITH_TBB=OFF -DWITH_OPENMP=OFF \
  -DWITH_EIGEN=OFF -DWITH_LAPACK=OFF -DWITH_PROTOBUF=OFF -DWITH_CUDA=OFF -DWITH_ADE=OFF \
  -DWITH_QUIRC=OFF -DWITH_CAROTENE=OFF -DOPENCV_GENERATE_PKGCONFIG=OFF -DENABLE_PIC=ON \
  -DINSTALL_C_EXAMPLES=OFF -DINSTALL_PYTHON_EXAMPLES=OFF -DOPENCV_ENABLE_NONFREE=OFF \
  -DBUILD_opencv_world=OFF -DOPENCV_FORCE_3RDPARTY_BUILD=OFF "${zlib[@]}" \
  -DPNG_LIBRARY="$out/lib/libpng16.a" -DPNG_PNG_INCLUDE_DIR="$out/include" \
  -DJPEG_LIBRARY="$out/lib/libjpeg.a" -DJPEG_INCLUDE_DIR="$out/include"

build yaml-cpp "${SRC[yaml-cpp]}" -DYAML_CPP_BUILD_TESTS=OFF -DYAML_CPP_BUILD_TOOLS=OFF \
  -DYAML_CPP_BUILD_CONTRIB=OFF -DYAML_BUILD_SHARED_LIBS=OFF
build cli11 "${SRC[cli11]}" -DCLI11_BUILD_TESTS=OFF -DCLI11_BUILD_EXAMPLES=OFF \
  -DCLI11_BUILD_DOCS=OFF -DCLI11_INSTALL=ON
build googletest "${SRC[googletest]}" -DBUILD_GMOCK=ON -DINSTALL_GTEST=ON -Dgtest_force_shared_crt=OFF

# The bundle travels: no file may name the folder it was built in. CMake's exported targets use
# their own location (_IMPORT_PREFIX); OpenCV's static config also names the codec archives it
# links, by absolute path, which are rewritten relative to it.
rm -rf "$out/share/doc" "$out/share/man" "$out/bin" "$out/share/licenses" "$out/lib/pkgconfig" \
  "$out/share/pkgconfig" "$out/lib/libpng" "$out/lib/cmake/libjpeg-turbo" "$out/share/opencv4/"{haarcascades,lbpcascades}
find "$out" -name '*.cmake' -print0 | xargs -0 grep -l "$out" | while read -r file; do
  case $file in
    */OpenCVModules*.cmake) sed -i "s|$out|\${_IMPORT_PREFIX}|g" "$file" ;;
    */OpenCVConfig*.cmake) sed -i "s|$out|\${OpenCV_INSTALL_PATH}|g" "$file" ;;
  esac
done
find "$out/lib" -name '*.la' -delete
find "$out/lib" -name '*.a' -exec strip --strip-debug {} +
# Text files only: OpenCV's core library keeps its install prefix as a string (the last place
# cv::utils::findDataFile looks for data files LibReID never asks for).
left=$(grep -rlI --exclude=VERSIONS "$out" "$out" || true)
if [ -n "$left" ]; then
  echo "bundle: files still naming $out (the bundle would not move):" >&2
  echo "$left" >&2
  exit 1
fi
# Every archive OpenCV's config links must be in the bundle.
for archive in $(grep -oh '${_IMPORT_PREFIX}/lib/[A-Za-z0-9_.+-]*\.a' "$out"/lib/cmake/opencv4/OpenCVModules.cmake | sort -u); do
  [ -f "$out/lib/${archive#'${_IMPORT_PREFIX}/lib/'}" ] || { echo "bundle: OpenCV links $archive, which is missing" >&2; exit 1; }
done

# Static archives only (nothing here may need a shared library the target machine lacks).
if find "$out" -name '*.so*' | grep -q .; then
  echo "bundle: shared libraries found in the bundle:" >&2; find "$out" -name '*.so*' >&2; exit 1
fi
bytes=$(du -sb "$out" | cut -f1)
mib=$(( (bytes + 1048575) / 1048576 ))
{ echo "abi _GLIBCXX_USE_CXX11_ABI=1"; echo "built $(date -u +%FT%TZ) on $(. /etc/os-release && echo "$PRETTY_NAME"), $(gcc -dumpfullversion)"; } >> "$out/VERSIONS"
echo "bundle: $out: ${mib} MiB ($(find "$out" -type f | wc -l) files) in $(( $(date +%s) - start )) s"
du -sh "$out"/lib/*.a | sort -h | tail -6
if [ "$mib" -ge "$limit_mib" ]; then
  echo "bundle: ${mib} MiB is over the ${limit_mib} MiB limit" >&2
  exit 1
fi
