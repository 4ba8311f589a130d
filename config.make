
# nginx's auto/make reads this after writing objs/Makefile: the rule that
# makes the status page's header from src/dashboard/ (see config)

ngx_scep_page=$NGX_OBJS/ngx_http_scep_dashboard_page.h
ngx_scep_page_srcs="$ngx_addon_dir/src/dashboard/embed \
                    $ngx_addon_dir/src/dashboard/index.html \
                    $ngx_addon_dir/src/dashboard/dashboard.css \
                    $ngx_addon_dir/src/dashboard/dashboard.js"

cat << END                                            >> $NGX_MAKEFILE

$ngx_scep_page:	$ngx_scep_page_srcs
	sh $ngx_addon_dir/src/dashboard/embed $ngx_addon_dir/src/dashboard \\
	    $ngx_scep_page

END
