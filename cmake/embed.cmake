# Embeds the web UI (web/*) into the binary: a generated C file holds each
# asset as a byte array plus a table of {path, mime, data, size}.
file(GLOB RAGD_WEB_FILES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/web/*.html ${CMAKE_SOURCE_DIR}/web/*.css
     ${CMAKE_SOURCE_DIR}/web/*.js ${CMAKE_SOURCE_DIR}/web/*.svg)
set(RAGD_WEB_ASSETS_C ${CMAKE_BINARY_DIR}/generated/web_assets.c)
add_custom_command(
  OUTPUT ${RAGD_WEB_ASSETS_C}
  COMMAND ${CMAKE_COMMAND} -DOUT=${RAGD_WEB_ASSETS_C} -DDIR=${CMAKE_SOURCE_DIR}/web -P
          ${CMAKE_SOURCE_DIR}/cmake/embed_files.cmake
  DEPENDS ${RAGD_WEB_FILES} ${CMAKE_SOURCE_DIR}/cmake/embed_files.cmake
  COMMENT "Embedding web UI assets")
