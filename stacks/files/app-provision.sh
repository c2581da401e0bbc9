#!/bin/bash
# Runs once on the image builder instance (user data). Installs a web server
# that answers the load balancer's health check on /health.
set -euo pipefail
yum install -y httpd
echo ok > /var/www/html/health
echo "drctl example app" > /var/www/html/index.html
systemctl enable httpd
