// SPDX-License-Identifier: GPL-2.0
/*
 * hold-device DEV [mmap]: keep the module busy for the unload tests. Opens
 * DEV; with "mmap", maps it and closes the file so that only the mapping
 * holds it. Says "holding" and waits to be killed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int fd;

	if (argc < 2)
		return 2;
	fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	if (argc > 2 && !strcmp(argv[2], "mmap")) {
		if (mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		close(fd);
	}
	printf("holding\n");
	fflush(stdout);
	for (;;)
		pause();
}
