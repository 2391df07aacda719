/* log.h - leveled logging to stderr, safe from any thread. */
#ifndef RAGD_COMMON_LOG_H
#define RAGD_COMMON_LOG_H

typedef enum rg_log_level { RG_LOG_DEBUG, RG_LOG_INFO, RG_LOG_WARN, RG_LOG_ERROR } rg_log_level;

/* The threshold is process configuration set once by main before threads
 * start; it is the only process-wide setting in the code base. */
void rg_log_set_level(rg_log_level level);
void rg_log(rg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_DEBUG(...) rg_log(RG_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) rg_log(RG_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...) rg_log(RG_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) rg_log(RG_LOG_ERROR, __VA_ARGS__)

#endif
