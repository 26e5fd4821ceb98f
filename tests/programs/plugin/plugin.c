/* plugin.c: found only through the RUNPATH of dlopen_runpath (see dlopen_runpath.c). */
int plugin_answer(void) { return 42; }
