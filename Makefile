# The README's commands. Each installs what is missing first.
BUILD ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo
DATA_DIR ?= ./signalbox-data

.PHONY: all deps build run test clean format

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$$(nproc)

run: build
	$(BUILD)/signalbox serve --data-dir $(DATA_DIR)

test: build
	cd $(BUILD) && ctest --output-on-failure

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan build-fuzz
